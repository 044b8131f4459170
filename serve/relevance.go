package serve

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// relevanceKey names what a relevance kind keeps beside its map in the analysis' costly store:
// "latents" [L] or "budget" [pixels, positions, latents, query, absorbed, logit].
func relevanceKey(kind string, class int, what string) string {
	return kind + ":c" + strconv.Itoa(class) + "/" + what
}

// relevanceJSON is GET /api/relevance's answer: each latent's relevance after the encoder
// cross-attention for the kind and class, and where the logit's relevance went.
type relevanceJSON struct {
	Kind         string             `json:"kind"`
	Class        int                `json:"class"`
	Latents      []float32          `json:"latents"`
	Conservation map[string]float32 `json:"conservation"`
}

// handleRelevance serves a relevance kind's per-latent relevance and conservation record for a
// class (default the top-1), computing the kind's map first if no request has yet.
func (s *Server) handleRelevance(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("kind")
	var kind *Kind
	var names []string
	for i := range s.kinds {
		if s.kinds[i].Relevance {
			names = append(names, s.kinds[i].Name)
			if s.kinds[i].Name == name {
				kind = &s.kinds[i]
			}
		}
	}
	if kind == nil {
		s.fail(w, r, badRequest("kind=%q: want a relevance kind, one of %s", name, strings.Join(names, ", ")))
		return
	}
	src, a, ok := s.sourceAnalysis(w, r)
	if !ok {
		return
	}
	var q Query
	var err error
	if q.Class, err = intParam(r, "class", top(a.Probs, nil, 1)[0].Index, 0, len(a.Probs)-1); err != nil {
		s.fail(w, r, err)
		return
	}
	q.Step = a.Applications
	if _, err := s.costlyMap(r.Context(), src, a, kind, q); err != nil {
		s.fail(w, r, err)
		return
	}
	lat, ok1 := a.costlyMap(relevanceKey(kind.Name, q.Class, "latents"))
	bud, ok2 := a.costlyMap(relevanceKey(kind.Name, q.Class, "budget"))
	if !ok1 || !ok2 || len(bud) != 6 {
		s.fail(w, r, fmt.Errorf("%s: kind %s kept no relevance for class %d", src.name, kind.Name, q.Class))
		return
	}
	writeJSON(w, http.StatusOK, relevanceJSON{Kind: kind.Name, Class: q.Class, Latents: lat, Conservation: map[string]float32{
		"pixels": bud[0], "positions": bud[1], "latents": bud[2], "query": bud[3], "absorbed": bud[4], "logit": bud[5]}})
}

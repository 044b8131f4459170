package serve

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
)

// SAE is a sparse autoencoder's dictionary shown as the "features" view: the folder written by
// `probe sae features` (features.json, a montage per entry, one PNG per top example) and a way to
// read an image through the autoencoder.
type SAE struct {
	Dir string // the features folder
	// Active returns an image's active dictionary entries from its normalised pixels [3, h, w]:
	// for a token autoencoder one per (latent, entry) with a positive value. It runs a forward
	// pass, so the server calls it in its work queue.
	Active func(pixels []float32, h, w int) ([]ActiveFeature, error)
}

// ActiveFeature is one entry active on an image: Latent is the latent whose token activates it
// (-1 for an autoencoder on a per-image column).
type ActiveFeature struct {
	Index  int     `json:"index"`
	Latent int     `json:"latent"`
	Value  float32 `json:"value"`
}

// saePNG are the file names the features folder holds.
var saePNG = regexp.MustCompile(`^(feature-\d{5}(-\d+)?|frequency|l0_fvu)\.png$`)

// maxActive bounds the entries GET /api/sae/active lists (the largest values).
const maxActive = 48

func (s *Server) handleSAE(w http.ResponseWriter, r *http.Request) {
	if s.opt.SAE == nil {
		writeError(w, http.StatusNotFound, "no --sae given")
		return
	}
	raw, err := os.ReadFile(filepath.Join(s.opt.SAE.Dir, "features.json"))
	if err != nil {
		s.fail(w, r, fmt.Errorf("the autoencoder's features: %w", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(raw)
}

func (s *Server) handleSAEPNG(w http.ResponseWriter, r *http.Request) {
	if s.opt.SAE == nil {
		writeError(w, http.StatusNotFound, "no --sae given")
		return
	}
	name := r.URL.Query().Get("name")
	if !saePNG.MatchString(name) {
		s.fail(w, r, badRequest("name=%q: not a file of the features folder", name))
		return
	}
	raw, err := os.ReadFile(filepath.Join(s.opt.SAE.Dir, name))
	if err != nil {
		writeError(w, http.StatusNotFound, name+": not drawn (probe sae features --montages draws the most frequent entries)")
		return
	}
	writePNG(w, raw)
}

func (s *Server) handleSAEActive(w http.ResponseWriter, r *http.Request) {
	if s.opt.SAE == nil || s.opt.SAE.Active == nil {
		writeError(w, http.StatusNotFound, "no --sae given")
		return
	}
	_, a, ok := s.sourceAnalysis(w, r)
	if !ok {
		return
	}
	var act []ActiveFeature
	err := s.queue.do(r.Context(), func() error {
		var err error
		act, err = s.opt.SAE.Active(a.Pixels, a.H, a.W)
		return err
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	slices.SortStableFunc(act, func(x, y ActiveFeature) int {
		switch {
		case x.Value > y.Value:
			return -1
		case x.Value < y.Value:
			return 1
		}
		return 0
	})
	total := len(act)
	if len(act) > maxActive {
		act = act[:maxActive]
	}
	writeJSON(w, http.StatusOK, map[string]any{"features": act, "total": total})
}

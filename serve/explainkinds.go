package serve

import (
	"fmt"

	"github.com/perceiverkit/perceiver/explain"
)

// ExplainMethods are the class-specific methods of package explain that the explorer offers by
// default, in the selector's order. Occlusion is left out: at 224×224 with its default 16×16
// windows at stride 8 it costs 729 forward passes (about 20 minutes at 1.8 s a pass), which
// would hold the single work slot far too long for a page; ExplainKind("occlusion", …) makes it
// a kind for a server that wants it.
var ExplainMethods = []string{"chefer", "grad-rollout", "saliency", "input-x-gradient", "integrated-gradients", "smoothgrad", "attnlrp", "cp-lrp"}

// signedMethods are the explain methods whose maps are signed (explain.Map.Signed); the kinds
// declare it up front so that the page picks the diverging colour map before the map arrives.
var signedMethods = map[string]bool{"input-x-gradient": true, "integrated-gradients": true, "occlusion": true, "attnlrp": true, "cp-lrp": true}

// explainCost is how many model passes a map of each method costs, for its help text.
func explainCost(name string, opt explain.Options) string {
	switch name {
	case "integrated-gradients":
		return fmt.Sprintf("%d backward passes", opt.Steps)
	case "smoothgrad":
		return fmt.Sprintf("%d backward passes", opt.Samples)
	case "occlusion":
		return "a forward pass per window"
	default:
		return "one backward pass"
	}
}

// ExplainKind returns the map kind that draws the explain method name for the class asked:
// the method runs on the analysis' normalised pixels with opt, and its map, on the token grid
// or the pixel grid, is drawn on the pixels (TokenGrid.ToPixels). The kind is PerClass and
// Costly, and Signed when the method's maps are.
func ExplainKind(name string, opt explain.Options) (Kind, error) {
	method, ok := explain.Lookup(name)
	if !ok {
		return Kind{}, fmt.Errorf("explain has no method %q (it has %v)", name, explain.Names())
	}
	relevance := explain.IsRelevance(name)
	return Kind{
		Name: name, Title: name, PerClass: true, Costly: true, Signed: signedMethods[name], Relevance: relevance,
		Help: fmt.Sprintf("%s; for the class chosen (%s)", method.Description, explainCost(name, opt)),
		Map: func(dst []float32, a *Analysis, q Query) error {
			m, err := method.Compute(explain.Input{Model: a.Model, Pixels: a.Pixels, H: a.H, W: a.W, Target: q.Class}, opt)
			if err != nil {
				return err
			}
			if relevance && m.Conservation != nil {
				// Kept beside the map for GET /api/relevance: a few floats.
				c := m.Conservation
				a.keepCostlyMap(relevanceKey(name, q.Class, "latents"), m.Latents)
				a.keepCostlyMap(relevanceKey(name, q.Class, "budget"), []float32{
					float32(c.Pixels), float32(c.Positions), float32(c.Latents), float32(c.Query), float32(c.Absorbed), float32(c.Logit)})
			}
			g := m.Grid
			if g.Height != a.H || g.Width != a.W || len(m.Values) != g.Tokens() {
				return fmt.Errorf("%s returned %d values on %v, want a map over the %d×%d image", name, len(m.Values), g, a.H, a.W)
			}
			g.ToPixels(dst, m.Values)
			return nil
		},
	}, nil
}

// explainKinds are the kinds of ExplainMethods with explain's default options.
func explainKinds() []Kind {
	kinds := make([]Kind, len(ExplainMethods))
	for i, name := range ExplainMethods {
		k, err := ExplainKind(name, explain.DefaultOptions())
		if err != nil {
			panic("serve: " + err.Error()) // a method renamed in explain: a programming error
		}
		kinds[i] = k
	}
	return kinds
}

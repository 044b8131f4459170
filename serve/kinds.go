package serve

import (
	"fmt"
	"sync"

	"github.com/perceiverkit/perceiver/attention"
	"github.com/perceiverkit/perceiver/core"
)

// Kind is one kind of map the explorer draws over the image. Register adds a kind to the
// selector of every server created afterwards; the page learns the kinds from GET /api/info and
// offers each one with the controls it declares.
type Kind struct {
	Name  string // the value of the kind parameter: lower case letters, digits and '-'
	Title string // shown in the selector
	Help  string // one sentence, shown as the selector's tooltip

	// PerClass says the map depends on a class: the page offers one per class of the top-5 and
	// passes it as Query.Class.
	PerClass bool
	// Steps says the map depends on how many self-attention applications it goes through: the
	// page enables the slider and passes its position as Query.Step.
	Steps bool
	// Signed says the map's values have a sign (an attribution): it is drawn over a range
	// symmetric about zero, with the diverging colour map unless the request names another.
	Signed bool
	// Costly says Map runs the model again (a backward pass, or many): the server runs it in the
	// work queue with the forward passes (one at a time, 503 when full), computes each
	// (class, step) it depends on once per analysis, lets concurrent requests share that
	// computation, and keeps the map with the analysis, counted in the cache budget.
	Costly bool
	// Relevance says the kind is a relevance propagation (attnlrp, cp-lrp) whose computation
	// also gives each latent's relevance and a conservation record: GET /api/relevance serves
	// them, and the page lists the most relevant latents. Only for PerClass, Costly kinds of
	// ExplainKind.
	Relevance bool

	// Trace is what the kind needs the forward pass to keep besides the encoder and decoder
	// attention; its flags are ORed into the trace of every analysis. Callbacks are ignored: use
	// Prepare with Analysis.Output.
	Trace core.Trace
	// Prepare, when set, runs once per analysis after the forward pass; it may store what Map
	// needs in a.Extra[Name] and should return the bytes it keeps, for the cache's budget.
	Prepare func(a *Analysis) (bytes int64, err error)
	// Map writes the map, row-major over the Analysis' H×W grid, into dst [H·W].
	Map func(dst []float32, a *Analysis, q Query) error
}

// Query holds a map request's parameters, already checked against the analysis: Class in
// [0, labels), Step in [0, Applications].
type Query struct {
	Class int // defaults to the top-1 class
	Step  int // self-attention applications gone through; defaults to all of them
}

var (
	kindsMu    sync.Mutex
	registered []Kind
)

func init() {
	// Here rather than in explainkinds.go's own init, so that the order is fixed: the
	// class-agnostic kinds first.
	for _, k := range append(builtinKinds(), explainKinds()...) {
		Register(k)
	}
}

// Register adds a map kind to the default set (Kinds). It panics on a bad or duplicate name:
// kinds are registered from init functions, where that is a programming error.
func Register(k Kind) {
	if err := k.check(); err != nil {
		panic("serve.Register: " + err.Error())
	}
	kindsMu.Lock()
	defer kindsMu.Unlock()
	for _, r := range registered {
		if r.Name == k.Name {
			panic("serve.Register: kind registered twice: " + k.Name)
		}
	}
	registered = append(registered, k)
}

// Kinds returns the registered map kinds in registration order: mean, decoder, rollout, the
// class-specific ones of package explain (ExplainMethods), then any others.
func Kinds() []Kind {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	return append([]Kind(nil), registered...)
}

func (k Kind) check() error {
	if k.Name == "" || len(k.Name) > 40 {
		return fmt.Errorf("kind name %q: want 1 to 40 characters", k.Name)
	}
	for _, r := range k.Name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return fmt.Errorf("kind name %q: only a-z, 0-9 and '-'", k.Name)
		}
	}
	if k.Map == nil {
		return fmt.Errorf("kind %q has no Map function", k.Name)
	}
	return nil
}

// builtinKinds are the maps of `probe attention` (see package attention for the formulas).
func builtinKinds() []Kind {
	return []Kind{
		{
			Name: "mean", Title: "mean", Help: "mean over latents of the encoder cross-attention: (1/L)·Σℓ C[ℓ, ·]",
			Map: func(dst []float32, a *Analysis, _ Query) error {
				attention.MeanMap(dst, a.Cross, a.Latents, a.H*a.W)
				return nil
			},
		},
		{
			Name: "decoder", Title: "decoder", Help: "the cross-attention weighted by the decoder query's attention over latents: d·C",
			Map: func(dst []float32, a *Analysis, _ Query) error {
				attention.WeightedMap(dst, a.Decoder, a.Cross, a.Latents, a.H*a.W)
				return nil
			},
		},
		{
			Name: "rollout", Title: "rollout", Steps: true,
			Help: "attention rollout through the first j self-attention applications: (d·Âj⋯Â1)·C; j = 0 is the decoder map",
			Map: func(dst []float32, a *Analysis, q Query) error {
				attention.WeightedMap(dst, a.RolloutWeights[q.Step], a.Cross, a.Latents, a.H*a.W)
				return nil
			},
		},
	}
}

// kindInfo is a kind as GET /api/info describes it.
type kindInfo struct {
	Name      string `json:"name"`
	Title     string `json:"title"`
	Help      string `json:"help"`
	PerClass  bool   `json:"per_class"`
	Steps     bool   `json:"steps"`
	Signed    bool   `json:"signed"`
	Costly    bool   `json:"costly"`
	Relevance bool   `json:"relevance,omitempty"`
}

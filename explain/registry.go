package explain

import (
	"fmt"
	"sort"
	"sync"

	"github.com/perceiverkit/perceiver/core"
)

// Map is an attribution over one image, on the model's token grid or on the pixel grid.
type Map struct {
	Method string         // registry name, e.g. "chefer"
	Grid   core.TokenGrid // the map's grid: Rows×Cols values; a pixel grid has Stride 1 and Rows=Height
	Values []float32      // [Grid.Rows*Grid.Cols], row-major
	Signed bool           // signed values: draw with a diverging colour map

	// Notes are a method's own numbers for the summary, e.g. integrated gradients' completeness
	// check; nil for most methods.
	Notes map[string]float64

	// The relevance methods (attnlrp, cp-lrp) also give where the logit's relevance went, each
	// latent's relevance after the encoder cross-attention [L], and the most relevant latents'
	// encoder attention on AttentionGrid (the model's token grid); nil for the other methods.
	Conservation  *Conservation
	Latents       []float32
	TopLatents    []LatentMap
	AttentionGrid core.TokenGrid
}

// Input is what a method explains: one normalised image and the class to explain.
type Input struct {
	Model  *core.Model
	Pixels []float32 // [3, H, W], as from the image processor
	H, W   int
	Target int // class index
}

// Options are the methods' settings (the probe explain flags).
type Options struct {
	Steps          int     // integrated gradients: Gauss–Legendre nodes (default 50)
	Baseline       string  // "zero" (pixel_values 0, the mean colour) or "black"
	Samples        int     // smoothgrad samples (default 25)
	Noise          float64 // smoothgrad σ as a fraction of max−min of x (default 0.15)
	Seed           uint64
	Window, Stride int // occlusion (registered by the faithfulness helper)
}

// DefaultOptions are the probe explain flags' defaults.
func DefaultOptions() Options {
	return Options{Steps: 50, Baseline: "zero", Samples: 25, Noise: 0.15, Window: 16, Stride: 8}
}

// Method is one registered attribution method.
type Method struct {
	Name, Description string
	Compute           func(in Input, opt Options) (Map, error)
}

var (
	regMu    sync.RWMutex
	registry = map[string]Method{}
)

// Register adds a method; it panics on a duplicate or empty name or a nil Compute (a programming
// error, found at init).
func Register(m Method) {
	regMu.Lock()
	defer regMu.Unlock()
	if m.Name == "" || m.Compute == nil {
		panic("explain.Register: a method needs a name and a Compute function")
	}
	if _, dup := registry[m.Name]; dup {
		panic(fmt.Sprintf("explain.Register: method %q registered twice", m.Name))
	}
	registry[m.Name] = m
}

// Lookup returns the method registered under name.
func Lookup(name string) (Method, bool) {
	regMu.RLock()
	defer regMu.RUnlock()
	m, ok := registry[name]
	return m, ok
}

// Names lists the registered methods, sorted.
func Names() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

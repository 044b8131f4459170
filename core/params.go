package core

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/perceiverkit/perceiver/core/weights"
	"github.com/perceiverkit/perceiver/internal/sgemm"
)

// Param is one weight tensor: the shape the config implies and, once loaded, its values
// (row-major; they may alias a read-only memory map).
type Param struct {
	Shape []int
	Data  []float32
}

func newParam(shape ...int) Param { return Param{Shape: shape} }

// first identifies the values the Param holds now: the address of the first one, or nil. Caches of
// values derived from weights keep it to notice a Data slice assigned anew.
func (p *Param) first() *float32 {
	if len(p.Data) == 0 {
		return nil
	}
	return &p.Data[0]
}

// Len is the number of values the shape holds.
func (p *Param) Len() int {
	n := 1
	for _, d := range p.Shape {
		n *= d
	}
	return n
}

// Linear is y = x·Wᵀ + b with W stored [out, in], as in PyTorch.
type Linear struct {
	Weight Param `hf:"weight"`
	Bias   Param `hf:"bias"`

	// packed is Weight packed once for the matrix kernel (see prepack); nil until then, or
	// stale if Weight.Data was replaced since, in which case linear packs per call.
	packed     *sgemm.PackedB
	packedFrom *float32
	// precision of the products by this layer's weights (Model.SetPrecision); float32 by default.
	precision Precision
}

// prepack packs the weights for linear. Call again after replacing Weight.Data.
func (l *Linear) prepack() {
	l.packed, l.packedFrom = nil, nil
	if len(l.Weight.Data) == 0 || len(l.Weight.Data) != l.Weight.Len() {
		return
	}
	l.packed = sgemm.PackBWith(l.precision, true, l.In(), l.Out(), l.Weight.Data, l.In())
	l.packedFrom = l.Weight.first()
}

// packedWeight returns the packed weights if they are those of Weight.Data, else nil.
func (l *Linear) packedWeight() *sgemm.PackedB {
	if l.packed == nil || l.Weight.first() != l.packedFrom {
		return nil
	}
	return l.packed
}

func newLinear(in, out int) Linear { return Linear{Weight: newParam(out, in), Bias: newParam(out)} }

// In and Out are the input and output widths.
func (l *Linear) In() int  { return l.Weight.Shape[1] }
func (l *Linear) Out() int { return l.Weight.Shape[0] }

// LayerNorm normalises each position over its channels, then scales and shifts.
type LayerNorm struct {
	Weight Param `hf:"weight"`
	Bias   Param `hf:"bias"`
}

func newLayerNorm(n int) LayerNorm { return LayerNorm{Weight: newParam(n), Bias: newParam(n)} }

// SelfAttention is Hugging Face's PerceiverSelfAttention: layer norms and the q/k/v projections.
// LayerNorm2 normalises the keys' and values' inputs of a cross-attention; a self-attention has
// none (nn.Identity in Hugging Face).
type SelfAttention struct {
	LayerNorm1 LayerNorm  `hf:"layernorm1"`
	LayerNorm2 *LayerNorm `hf:"layernorm2"`
	Query      Linear     `hf:"query"`
	Key        Linear     `hf:"key"`
	Value      Linear     `hf:"value"`
}

// AttentionOutput is the projection of the attention's context back to the query width.
type AttentionOutput struct {
	Dense Linear `hf:"dense"`
}

// Attention is Hugging Face's PerceiverAttention.
type Attention struct {
	Self   SelfAttention   `hf:"self"`
	Output AttentionOutput `hf:"output"`
}

// MLP is the two-layer feed-forward block with an exact-erf GELU between the layers.
type MLP struct {
	Dense1 Linear `hf:"dense1"`
	Dense2 Linear `hf:"dense2"`
}

// Layer is Hugging Face's PerceiverLayer: pre-LN attention with an optional query residual, then
// x + MLP(LN(x)).
type Layer struct {
	Attention Attention `hf:"attention"`
	LayerNorm LayerNorm `hf:"layernorm"`
	MLP       MLP       `hf:"mlp"`

	Heads         int  // attention heads
	QueryResidual bool // add the queries to the attention output
}

func newLayer(cross bool, qDim, kvDim, qk, v, heads, widening int, residual bool) Layer {
	l := Layer{
		Attention: Attention{
			Self: SelfAttention{
				LayerNorm1: newLayerNorm(qDim),
				Query:      newLinear(qDim, qk),
				Key:        newLinear(kvDim, qk),
				Value:      newLinear(kvDim, v),
			},
		},
		LayerNorm:     newLayerNorm(qDim),
		MLP:           MLP{Dense1: newLinear(qDim, widening*qDim), Dense2: newLinear(widening*qDim, qDim)},
		Heads:         heads,
		QueryResidual: residual,
	}
	out := v // a self-attention projects back to its value width
	if cross {
		ln := newLayerNorm(kvDim)
		l.Attention.Self.LayerNorm2 = &ln
		out = qDim
	}
	l.Attention.Output.Dense = newLinear(v, out)
	return l
}

// Weights are the parameters of a vision Perceiver, composed of its parts: the input stage (chosen
// by config.json's architectures), the latents and the encoder cross-attention, the self-attention
// layers of the latent stack (applied num_blocks times), and the decoder. Each field is tagged with
// the path of its tensors in the Hugging Face state dict.
type Weights struct {
	Input          InputStage `hf:"perceiver.input_preprocessor"`
	Latents        Param      `hf:"perceiver.embeddings.latents"`
	CrossAttention Layer      `hf:"perceiver.encoder.cross_attention"`
	SelfAttends    []Layer    `hf:"perceiver.encoder.self_attends"`
	Decoder        Decoder    `hf:"perceiver.decoder.decoder"`
}

// ClassificationDecoder is Hugging Face's PerceiverClassificationDecoder, shared by the three image
// classifiers: one trainable query attends to the latents, then a linear layer gives the logits.
type ClassificationDecoder struct {
	Query          Param  `hf:"output_position_encodings.position_embeddings"` // [1, d_latents]
	CrossAttention Layer  `hf:"decoding_cross_attention"`
	FinalLayer     Linear `hf:"final_layer"`
}

// Classifier returns the classification decoder, or nil for a model that decodes something else.
func (w *Weights) Classifier() *ClassificationDecoder {
	d, _ := w.Decoder.(*ClassificationDecoder)
	return d
}

// newWeights lays out every tensor the config implies, with shapes and no values. prep is the
// processor's output size (height, width); shape gives the shape of a checkpoint tensor by its full
// name, or nil, for the sizes config.json does not state (the input stages' widths).
func newWeights(c *Config, prep [2]int, shape func(string) []int) (Weights, error) {
	if shape == nil {
		shape = func(string) []int { return nil }
	}
	stageShape := func(name string) []int { return shape("perceiver.input_preprocessor." + name) }
	var w Weights
	var err error
	switch arch, aerr := c.Arch(); {
	case aerr != nil:
		return Weights{}, aerr
	case arch == ArchLearned:
		w.Input, err = newLearnedStage(c, stageShape)
	case arch == ArchConv:
		w.Input, err = newConvStage(c, prep, stageShape)
	case arch == ArchFlow:
		w.Input, err = newFlowStage(c, stageShape)
	default:
		w.Input, err = newFourierStage(c, prep)
	}
	if err != nil {
		return Weights{}, err
	}
	d := c.DLatents
	eqk, ev := c.crossChannels(c.QKChannels, c.VChannels, d, c.DModel)
	w.Latents = newParam(c.NumLatents, d)
	w.CrossAttention = newLayer(true, d, c.DModel, eqk, ev, c.NumCrossAttentionHeads, c.CrossAttentionWideningFactor, c.UseQueryResidual)
	for i := 0; i < c.NumSelfAttendsPerBlock; i++ {
		// Hugging Face builds self-attention layers with the default use_query_residual=True.
		w.SelfAttends = append(w.SelfAttends, newLayer(false, d, d, c.selfQKChannels(), c.selfVChannels(), c.NumSelfAttentionHeads, c.SelfAttentionWideningFactor, true))
	}
	if fs, ok := w.Input.(*FlowStage); ok {
		w.Decoder = newFlowDecoder(c, fs)
		return w, nil
	}
	// The classification decoder: one head, widening 1, query residual, and qk/v widths from
	// cross_attention_shape_for_attention alone (it does not pass the config's qk/v channels).
	dqk, dv := c.crossChannels(nil, nil, d, d)
	w.Decoder = &ClassificationDecoder{
		Query:          newParam(1, d),
		CrossAttention: newLayer(true, d, d, dqk, dv, 1, 1, true),
		FinalLayer:     newLinear(d, c.NumLabels()),
	}
	return w, nil
}

// Buffer is a tensor a checkpoint holds beside the weights that the forward pass does not use
// (BatchNorm's num_batches_tracked): accepted when present, not required, never listed in Params.
type Buffer struct{}

// NamedParam is a parameter with its Hugging Face name.
type NamedParam struct {
	Name  string
	Param *Param
}

// Params lists every parameter with its Hugging Face name, in declaration order.
func (w *Weights) Params() []NamedParam {
	var out []NamedParam
	walkTagged(reflect.ValueOf(w).Elem(), "", func(name string, v reflect.Value) bool {
		if v.Type() != paramType {
			return false
		}
		out = append(out, NamedParam{name, v.Addr().Interface().(*Param)})
		return true
	})
	return out
}

var (
	paramType  = reflect.TypeOf(Param{})
	linearType = reflect.TypeOf(Linear{})
	bufferType = reflect.TypeOf(Buffer{})
)

// buffers lists the names of the Buffers the weights accept.
func (w *Weights) buffers() map[string]bool {
	out := map[string]bool{}
	walkTagged(reflect.ValueOf(w).Elem(), "", func(name string, v reflect.Value) bool {
		if v.Type() != bufferType {
			return false
		}
		out[name] = true
		return true
	})
	return out
}

// walkTagged visits v and, through pointers, slices and hf-tagged struct fields, everything it
// holds, with the Hugging Face name of each value. visit returns true when it consumed a value,
// which stops the descent there.
func walkTagged(v reflect.Value, prefix string, visit func(name string, v reflect.Value) bool) {
	join := func(a, b string) string {
		if a == "" {
			return b
		}
		return a + "." + b
	}
	if visit(prefix, v) {
		return
	}
	switch v.Kind() {
	case reflect.Interface:
		if !v.IsNil() {
			walkTagged(v.Elem(), prefix, visit)
		}
	case reflect.Pointer:
		if !v.IsNil() {
			walkTagged(v.Elem(), prefix, visit)
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			walkTagged(v.Index(i), join(prefix, strconv.Itoa(i)), visit)
		}
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			if tag, ok := t.Field(i).Tag.Lookup("hf"); ok {
				walkTagged(v.Field(i), join(prefix, tag), visit)
			}
		}
	}
}

// NumParams counts the scalar parameters.
func (w *Weights) NumParams() int {
	n := 0
	for _, p := range w.Params() {
		n += p.Param.Len()
	}
	return n
}

// assign fills the weights from a tensor file, strictly: every tensor the config implies must be
// present with its exact shape, and the file must hold no other tensor. All problems are reported
// together, by name, in one error.
func (w *Weights) assign(f *weights.File) error {
	var missing, mismatched []string
	want := map[string]bool{}
	for _, np := range w.Params() {
		want[np.Name] = true
		t, ok := f.Tensors[np.Name]
		if !ok {
			missing = append(missing, np.Name)
			continue
		}
		if !slices.Equal(t.Shape, np.Param.Shape) {
			mismatched = append(mismatched, fmt.Sprintf("%s is %v, want %v", np.Name, t.Shape, np.Param.Shape))
			continue
		}
		np.Param.Data = t.Data
	}
	var unexpected []string
	buffers := w.buffers()
	for name := range f.Tensors {
		if !want[name] && !buffers[name] {
			unexpected = append(unexpected, weights.PrintableName(name))
		}
	}
	slices.Sort(unexpected)
	if err := mismatchError(f.Path, missing, unexpected, mismatched); err != nil {
		return err
	}
	return checkFinite(w, f.Path)
}

// ErrWeights marks a weights file whose tensors do not fit the config.
var ErrWeights = errors.New("tensors do not match the config")

// randomize fills every parameter with deterministic random values drawn so that attention is
// peaked, as the reference fixtures are: linear and convolution weights N(0, 1/fan_in), biases
// N(0, 0.01²), LayerNorm and BatchNorm scales 1+N(0, 0.2²) and shifts N(0, 0.1²), running means
// N(0, 0.1²) and variances 1+|N(0, 0.2²)|, latents, queries and learned positions N(0, 1).
func (w *Weights) randomize(seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	for _, np := range w.Params() {
		p := np.Param
		p.Data = make([]float32, p.Len())
		std, mean := 1.0, 0.0
		switch {
		case strings.HasSuffix(np.Name, ".weight") && len(p.Shape) >= 2: // linear and convolution weights
			std = 1 / math.Sqrt(float64(p.Len()/p.Shape[0]))
		case strings.HasSuffix(np.Name, ".running_mean"):
			std = 0.1
		case strings.HasSuffix(np.Name, ".running_var"):
			mean, std = 1, 0 // drawn below as 1 + |N(0, 0.2²)|, positive
		case strings.HasSuffix(np.Name, ".bias") && strings.Contains(np.Name, "layernorm"):
			std = 0.1
		case strings.HasSuffix(np.Name, ".weight"):
			mean, std = 1, 0.2
		case strings.HasSuffix(np.Name, ".bias"):
			std = 0.01
		}
		for i := range p.Data {
			p.Data[i] = float32(mean + std*rng.NormFloat64())
			if strings.HasSuffix(np.Name, ".running_var") {
				p.Data[i] += float32(0.2 * math.Abs(rng.NormFloat64()))
			}
		}
	}
}

// prepack packs every linear layer's weights once, after they are assigned or drawn.
func (w *Weights) prepack() {
	w.eachLinear(func(l *Linear) { l.prepack() })
}

// eachLinear calls f on every linear layer of the weights.
func (w *Weights) eachLinear(f func(*Linear)) {
	walkTagged(reflect.ValueOf(w).Elem(), "", func(_ string, v reflect.Value) bool {
		if v.Type() != linearType {
			return false
		}
		f(v.Addr().Interface().(*Linear))
		return true
	})
}

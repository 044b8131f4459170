package train

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/core/preprocess"
)

// rngStream separates this package's draws from core's random weights for the same seed.
const rngStream = 0x7472_6169_6e00_0001 // "train\0\0\1"

// FromScratch builds the model cfg and prep describe with Hugging Face's _init_weights rules,
// drawn from seed: linear and convolution weights, the latents, the learned positions and the
// decoder's query N(0, initializer_range²); biases 0; LayerNorm and BatchNorm scale 1, shift 0;
// running mean 0, running variance 1. Values are drawn in Weights.Params order, row-major.
func FromScratch(cfg core.Config, prep preprocess.Config, seed uint64) (*core.Model, error) {
	m, err := core.New(cfg, prep)
	if err != nil {
		return nil, err
	}
	std := cfg.InitializerRange
	if !(std > 0) {
		return nil, fmt.Errorf("config: initializer_range %v must be positive", std)
	}
	rng := rand.New(rand.NewPCG(seed, rngStream))
	for _, np := range m.Weights.Params() {
		p := np.Param
		p.Data = make([]float32, p.Len())
		name := np.Name
		switch {
		case strings.HasSuffix(name, ".running_var"):
			fill(p.Data, 1)
		case strings.HasSuffix(name, ".running_mean"), strings.HasSuffix(name, ".bias"):
			// zero
		case strings.Contains(name, "layernorm") || strings.Contains(name, "batchnorm"):
			fill(p.Data, 1)
		default:
			for i := range p.Data {
				p.Data[i] = float32(std * rng.NormFloat64())
			}
		}
	}
	m.WeightsChanged()
	return m, nil
}

func fill(d []float32, v float32) {
	for i := range d {
		d[i] = v
	}
}

// FinalLayerNames are the state-dict names of the classification decoder's last layer.
var FinalLayerNames = [2]string{"perceiver.decoder.decoder.final_layer.weight", "perceiver.decoder.decoder.final_layer.bias"}

// Relabel returns a copy of m whose classification decoder ends in a fresh Linear(d_latents → n)
// (Hugging Face's _init_weights: weight N(0, initializer_range²) from seed, bias 0) and whose
// config names n classes: names when it has n entries, else class_i. Every other tensor keeps
// m's values (copied, bit for bit).
func Relabel(m *core.Model, n int, names []string, seed uint64) (*core.Model, error) {
	if n < 1 {
		return nil, fmt.Errorf("--labels %d: want at least 1 class", n)
	}
	if m.Weights.Classifier() == nil {
		return nil, fmt.Errorf("--labels: the model has no classification decoder to replace")
	}
	cfg := m.Config
	cfg.ID2Label = make(map[string]string, n)
	cfg.Label2ID = make(map[string]int, n)
	for i := range n {
		name := "class_" + strconv.Itoa(i)
		if len(names) == n {
			name = names[i]
		}
		cfg.ID2Label[strconv.Itoa(i)] = name
		cfg.Label2ID[name] = i
	}
	shapes := map[string][]int{}
	values := map[string][]float32{}
	for _, p := range m.Weights.Params() {
		shapes[p.Name] = p.Param.Shape
		values[p.Name] = p.Param.Data
	}
	r, err := core.NewShaped(cfg, m.Preprocessor, func(name string) []int { return shapes[name] })
	if err != nil {
		return nil, err
	}
	std := cfg.InitializerRange
	if !(std > 0) {
		return nil, fmt.Errorf("config: initializer_range %v must be positive", std)
	}
	rng := rand.New(rand.NewPCG(seed, rngStream))
	for _, np := range r.Weights.Params() {
		p := np.Param
		p.Data = make([]float32, p.Len())
		switch np.Name {
		case FinalLayerNames[0]:
			for i := range p.Data {
				p.Data[i] = float32(std * rng.NormFloat64())
			}
		case FinalLayerNames[1]:
		default:
			copy(p.Data, values[np.Name])
		}
	}
	r.WeightsChanged()
	return r, nil
}

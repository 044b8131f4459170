package core

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/perceiverkit/perceiver/core/preprocess"
	"github.com/perceiverkit/perceiver/core/weights"
	"github.com/perceiverkit/perceiver/internal/outfile"
)

// Model is a vision Perceiver (PerceiverForImageClassificationFourier, …Learned or
// …ConvProcessing, as config.json's architectures says): the configuration, the weights composed
// of the model's parts, and the image processor settings it was trained with. A Model is safe for
// concurrent Forward calls.
//
// To change a weight (an ablation, say), assign the Param a new Data slice between Forward calls:
// the forward pass notices and stops using what it derived from the old values (the weights packed
// for the matrix kernels, the encoder's queries). Values changed inside a slice already in use are
// not noticed, and weights loaded from model.safetensors are a read-only memory map.
type Model struct {
	Config       Config
	Preprocessor preprocess.Config
	Weights      Weights

	file   *weights.File
	widest int // maxWidth of the weights, fixed by the config

	encMu       sync.Mutex
	encoders    map[[2]int]*separableEncoder // the single-head encoder attention per input size,
	encoderFrom []*float32                   // for the weights starting at these addresses
	learned     *learnedEncoder              // likewise for the learned stage (one size)
	learnedFrom []*float32

	backPacks backwardPacks // weights packed for the backward pass's products (backward_ops.go)

	precision Precision // of the weights' products (SetOptions)
}

// New lays out a model for cfg and prep with no weight values yet (see Load and NewRandom).
// The sizes config.json does not state (the widths of the learned and conv input stages) take
// Hugging Face's values; Load reads them from the checkpoint instead.
func New(cfg Config, prep preprocess.Config) (*Model, error) {
	return newModel(cfg, prep, nil)
}

// NewShaped lays out a model as New does, with the sizes config.json does not state taken from
// shape, a checkpoint tensor's shape by its Hugging Face name (nil where unknown): the layout of
// an existing model with a changed config, such as a new number of classes.
func NewShaped(cfg Config, prep preprocess.Config, shape func(string) []int) (*Model, error) {
	return newModel(cfg, prep, shape)
}

// newModel lays out a model; shape, when not nil, gives checkpoint tensors' shapes by name.
func newModel(cfg Config, prep preprocess.Config, shape func(string) []int) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := prep.Validate(); err != nil {
		return nil, fmt.Errorf("preprocessor config: %w", err)
	}
	w, err := newWeights(&cfg, [2]int{prep.Size.Height, prep.Size.Width}, shape)
	if err != nil {
		return nil, err
	}
	if c := w.Input.Channels(); c != cfg.DModel {
		return nil, fmt.Errorf("config: the %s input stage makes tokens of %d channels, d_model is %d", w.Input.Kind(), c, cfg.DModel)
	}
	m := &Model{
		Config:       cfg,
		Preprocessor: prep,
		Weights:      w,
		encoders:     map[[2]int]*separableEncoder{},
	}
	m.widest = maxWidth(&m.Weights)
	return m, nil
}

// NewRandom builds a model with deterministic random weights: for tests, demos and benchmarks.
// It is not a trained model.
func NewRandom(cfg Config, prep preprocess.Config, seed uint64) (*Model, error) {
	m, err := New(cfg, prep)
	if err != nil {
		return nil, err
	}
	m.Weights.randomize(seed)
	m.Weights.prepack()
	return m, nil
}

// Randomized returns a model of the same architecture, sizes and processor as m with deterministic
// random weights drawn as NewRandom draws them: a random-initialisation baseline, and the way to
// get random weights for an input stage whose widths config.json does not state.
func (m *Model) Randomized(seed uint64) (*Model, error) {
	shapes := map[string][]int{}
	for _, p := range m.Weights.Params() {
		shapes[p.Name] = p.Param.Shape
	}
	r, err := newModel(m.Config, m.Preprocessor, func(name string) []int { return shapes[name] })
	if err != nil {
		return nil, err
	}
	r.Weights.randomize(seed)
	r.Weights.prepack()
	return r, nil
}

// Files a model folder holds.
const (
	ConfigFile       = "config.json"
	PreprocessorFile = "preprocessor_config.json"
)

// Load reads a Hugging Face model folder: config.json, preprocessor_config.json (processor defaults
// when absent) and model.safetensors or pytorch_model.bin. The architecture comes from config.json;
// the input stage's widths that it does not state come from the checkpoint's shapes. Close
// releases the weights' memory map.
func Load(dir string) (*Model, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("model folder: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("model folder %s: not a directory", dir)
	}
	cfg, err := LoadConfig(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, err
	}
	prep := preprocess.DefaultConfig()
	if p := filepath.Join(dir, PreprocessorFile); fileExists(p) {
		if prep, err = preprocess.LoadConfig(p); err != nil {
			return nil, err
		}
	}
	f, err := weights.Open(dir)
	if err != nil {
		return nil, err
	}
	shape := func(name string) []int {
		if t, ok := f.Tensors[name]; ok {
			return t.Shape
		}
		return nil
	}
	m, err := newModel(cfg, prep, shape)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if err := m.Weights.assign(f); err != nil {
		f.Close()
		return nil, err
	}
	m.Weights.prepack()
	m.file = f
	return m, nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

// WeightsPath is the file the weights were read from, or "" for a model built in memory.
func (m *Model) WeightsPath() string {
	if m.file == nil {
		return ""
	}
	return m.file.Path
}

// Close releases the weights file. The model must not be used afterwards.
func (m *Model) Close() error {
	if m.file == nil {
		return nil
	}
	err := m.file.Close()
	m.file = nil
	return err
}

// Save writes the model as a Hugging Face folder: config.json, preprocessor_config.json and
// model.safetensors (every parameter, float32; buffers the forward pass does not use are left
// out, and Load does not require them). metadata goes into the safetensors header. A target that
// is not a regular file (a symlink, a device, a FIFO) is refused, never replaced.
func (m *Model) Save(dir string, metadata map[string]string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cfg, err := json.MarshalIndent(m.Config, "", "  ")
	if err != nil {
		return err
	}
	prep, err := json.MarshalIndent(m.Preprocessor, "", "  ")
	if err != nil {
		return err
	}
	if err := outfile.WriteFile(filepath.Join(dir, ConfigFile), cfg, 0o644); err != nil {
		return err
	}
	if err := outfile.WriteFile(filepath.Join(dir, PreprocessorFile), prep, 0o644); err != nil {
		return err
	}
	var ts []*weights.Tensor
	for _, p := range m.Weights.Params() {
		ts = append(ts, &weights.Tensor{Name: p.Name, DType: "F32", Shape: p.Param.Shape, Data: p.Param.Data})
	}
	md := map[string]string{"format": "pt"}
	for k, v := range metadata {
		md[k] = v
	}
	return weights.WriteSafetensors(filepath.Join(dir, "model.safetensors"), ts, md)
}

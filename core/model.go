package core

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/perceiverkit/perceiver/core/preprocess"
	"github.com/perceiverkit/perceiver/core/weights"
	"github.com/perceiverkit/perceiver/fourier"
)

// Model is PerceiverForImageClassificationFourier: the configuration, the weights and the image
// processor settings it was trained with. A Model is safe for concurrent Forward calls.
//
// To change a weight (an ablation, say), assign the Param a new Data slice between Forward calls:
// the forward pass notices and stops using what it derived from the old values (the weights packed
// for the matrix kernels, the encoder's queries). Values changed inside a slice already in use are
// not noticed, and weights loaded from model.safetensors are a read-only memory map.
type Model struct {
	Config       Config
	Preprocessor preprocess.Config
	Weights      Weights
	// Fourier describes the position features. Their frequencies follow the resolution the model
	// was built for (the processor's output size); positions follow each input's own size.
	Fourier fourier.Spec

	file   *weights.File
	widest int // maxWidth of the weights, fixed by the config

	mu        sync.Mutex
	positions map[[2]int][]float32 // position features per input size

	encMu       sync.Mutex
	encoders    map[[2]int]*separableEncoder // the single-head encoder attention per input size,
	encoderFrom []*float32                   // for the weights starting at these addresses
}

// New lays out a model for cfg and prep with no weight values yet (see Load and NewRandom).
func New(cfg Config, prep preprocess.Config) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := prep.Validate(); err != nil {
		return nil, fmt.Errorf("preprocessor config: %w", err)
	}
	m := &Model{
		Config:       cfg,
		Preprocessor: prep,
		Weights:      newWeights(&cfg),
		Fourier:      fourier.Spec{MaxResolution: [2]int{prep.Size.Height, prep.Size.Width}, NumBands: cfg.NumBands()},
		positions:    map[[2]int][]float32{},
		encoders:     map[[2]int]*separableEncoder{},
	}
	m.widest = maxWidth(&m.Weights)
	if err := m.Fourier.Validate(); err != nil {
		return nil, err
	}
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

// Files a model folder holds.
const (
	ConfigFile       = "config.json"
	PreprocessorFile = "preprocessor_config.json"
)

// Load reads a Hugging Face model folder: config.json, preprocessor_config.json (processor defaults
// when absent) and model.safetensors or pytorch_model.bin. Close releases the weights' memory map.
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
	m, err := New(cfg, prep)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	f, err := weights.Open(dir)
	if err != nil {
		return nil, err
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

// positionFeatures returns the cached Fourier features [h·w, Fourier.Channels()] of an h×w input.
func (m *Model) positionFeatures(h, w int) []float32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := [2]int{h, w}
	if p, ok := m.positions[key]; ok {
		return p
	}
	p := make([]float32, h*w*m.Fourier.Channels())
	fourier.Features(p, h, w, m.Fourier)
	m.positions[key] = p
	return p
}

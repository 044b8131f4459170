package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/core/hub"
	"github.com/perceiverkit/perceiver/core/preprocess"
)

// modelFlags are the flags every command that runs the model shares.
type modelFlags struct {
	model     string
	exif      bool
	maxPixels int64
}

func (f *modelFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.model, "model", "", "model folder (config.json, preprocessor_config.json, model.safetensors or pytorch_model.bin) or hub id org/name[@revision]")
	fs.BoolVar(&f.exif, "exif-orientation", false, "rotate JPEG, PNG and WebP images as their EXIF orientation says (Hugging Face does not; off for parity); TIFFs are always rotated, as Pillow does on load")
	fs.Int64Var(&f.maxPixels, "max-pixels", preprocess.DefaultMaxPixels, "refuse images with more pixels than this, before decoding (decompression bombs); negative: no limit")
}

func (f *modelFlags) decodeOptions() preprocess.Options {
	return preprocess.Options{MaxPixels: f.maxPixels, ApplyEXIFOrientation: f.exif}
}

// open loads the model the flags name: a local folder, or a hub id (org/name[@revision]) resolved
// through the Hugging Face cache and downloaded when missing (HF_HUB_OFFLINE=1 forbids that).
func (f *modelFlags) open(stderr io.Writer) (*core.Model, error) {
	dir, err := f.resolve(stderr)
	if err != nil {
		return nil, err
	}
	m, err := core.Load(dir)
	if err != nil {
		return nil, err
	}
	// core.Load falls back to the processor's defaults, as transformers does; predictions change
	// if the model was trained with other settings, so say which were used. The optical flow model
	// uses no image processor (its frames are only rescaled to [−1, 1]).
	if _, flow := m.TrainSize(); !flow && !fileExists(filepath.Join(dir, core.PreprocessorFile)) {
		p := filepath.Join(dir, core.PreprocessorFile)
		fmt.Fprintf(stderr, "warning: %s is missing: using PerceiverImageProcessor's defaults (%v)\n", p, m.Preprocessor)
	}
	return m, nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func (f *modelFlags) resolve(stderr io.Writer) (string, error) {
	if f.model == "" {
		return "", fmt.Errorf("--model is required")
	}
	_, statErr := os.Stat(f.model)
	if statErr != nil {
		if why := pathLike(f.model); why != "" {
			// A mistyped folder must not turn into a download attempt of a repository nobody meant.
			return "", fmt.Errorf("--model %s: no such folder (read as a local path because it %s; a hub id is org/name[@revision])", f.model, why)
		}
	}
	opt := hub.OptionsFromEnv(os.Getenv)
	opt.Progress = stderr
	dir, err := hub.Resolve(context.Background(), f.model, opt)
	if err != nil && statErr != nil {
		if _, _, ok := hub.ParseRepoID(f.model); ok {
			return "", fmt.Errorf("--model %s: not a local folder (no such file or directory), and as a hub id: %w", f.model, err)
		}
	}
	return dir, err
}

// pathLike says why a --model value that does not exist must be a local path and not a hub id
// (org/name[@revision]), or "" when it may be a hub id: it starts with "." or "/" or "~", it has a
// "/" but is not a valid hub id, or the folder its first part names exists here.
func pathLike(model string) string {
	switch {
	case strings.HasPrefix(model, ".") || strings.HasPrefix(model, "~"):
		return "starts with " + model[:1]
	case filepath.IsAbs(model):
		return "is an absolute path"
	case !strings.Contains(model, "/"):
		return ""
	}
	if _, _, ok := hub.ParseRepoID(model); !ok {
		return "has a / but is not a hub id"
	}
	if parent := filepath.Dir(model); parent != "." {
		if fi, err := os.Stat(parent); err == nil && fi.IsDir() {
			return "names a file in the existing folder " + parent
		}
	}
	return ""
}

// randomFullSize builds the full-size architecture of a kind (fourier, learned or conv) with
// deterministic random weights: for benchmarks and for showing output formats, never a trained model.
func randomFullSize(kind string, seed uint64) (*core.Model, error) {
	cfg, err := core.FullSizeConfigFor(kind)
	if err != nil {
		return nil, fmt.Errorf("--arch: %w", err)
	}
	return core.NewRandom(cfg, preprocess.DefaultConfig(), seed)
}

// openOrRandom is the model of a command that takes --model or --random [--arch KIND]: the named
// model, or the full-size architecture of that kind with random weights (seed 1).
func (f *modelFlags) openOrRandom(random bool, arch string, stderr io.Writer) (*core.Model, error) {
	m, _, err := f.openOrRandomNamed(random, arch, stderr)
	return m, err
}

// openOrRandomNamed is openOrRandom with the words that name the model in outputs: the --model
// argument, or what the random weights are.
func (f *modelFlags) openOrRandomNamed(random bool, arch string, stderr io.Writer) (*core.Model, string, error) {
	if random {
		m, err := randomFullSize(arch, 1)
		return m, "random weights (full-size " + arch + " architecture, seed 1)", err
	}
	m, err := f.open(stderr)
	return m, f.model, err
}

// archFlag registers --arch, the architecture --random builds.
func archFlag(fs *flag.FlagSet) *string {
	return fs.String("arch", "fourier", "with --random: the architecture, fourier, learned or conv")
}

// precisionFlag registers --precision on the commands that run only the forward pass.
func precisionFlag(fs *flag.FlagSet) *string {
	return fs.String("precision", "float32", "matrix products: float32 (Hugging Face's numerics) or bf16 (bfloat16 operands, float32 sums; needs AVX-512 BF16, see the README)")
}

// applyPrecision sets the model's products to the --precision value. bf16 on a CPU without
// AVX-512 BF16 is refused, naming the missing features, unless PERCEIVERKIT_KERNEL=generic asks
// for the portable definition (slow: for checking results, not for work).
func applyPrecision(m *core.Model, precision string, stderr io.Writer) error {
	var p core.Precision
	switch precision {
	case "float32", "fp32", "":
		return nil
	case "bf16", "bfloat16":
		p = core.BF16
	default:
		return fmt.Errorf("--precision %q: want float32 or bf16", precision)
	}
	if name, missing := core.BF16Kernel(); len(missing) > 0 {
		if os.Getenv("PERCEIVERKIT_KERNEL") != "generic" {
			return fmt.Errorf("--precision bf16: this CPU lacks %v (set PERCEIVERKIT_KERNEL=generic to run the slow portable definition)", missing)
		}
		fmt.Fprintf(stderr, "warning: --precision bf16 runs the portable %s kernel (this CPU lacks %v): slow\n", name, missing)
	}
	return m.SetOptions(core.Options{Precision: p})
}

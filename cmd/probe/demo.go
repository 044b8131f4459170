package main

import (
	"embed"
	"fmt"
	"image/png"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/core/preprocess"
	"github.com/perceiverkit/perceiver/internal/outfile"
	"github.com/perceiverkit/perceiver/probe"
)

// demodata holds 500 training and 200 test images of Fashion-MNIST (MIT licence, see
// demodata/LICENSE), so that the demo needs no download.
//
//go:embed demodata
var demodata embed.FS

func init() {
	register("demo", "run the whole pipeline offline on a small random-weight Perceiver and Fashion-MNIST images", runDemo)
}

// demoModel is a small Perceiver IO image classifier for 28×28 images: 32 latents of 64
// channels, 2 blocks of 2 self-attention layers with 4 heads, 8 Fourier bands (d_model 37) and
// Fashion-MNIST's 10 class names. Its weights are random: it shows the pipeline, not a result.
func demoModel() (*core.Model, error) {
	cfg := core.DefaultConfig()
	cfg.Architectures = []string{"PerceiverForImageClassificationFourier"}
	cfg.NumLatents, cfg.DLatents, cfg.DModel = 32, 64, 37
	cfg.NumBlocks, cfg.NumSelfAttendsPerBlock = 2, 2
	cfg.NumSelfAttentionHeads, cfg.NumCrossAttentionHeads = 4, 1
	cfg.ID2Label = map[string]string{}
	cfg.Label2ID = map[string]int{}
	for i, name := range probe.FashionMNISTClasses {
		cfg.ID2Label[strconv.Itoa(i)] = name
		cfg.Label2ID[name] = i
	}
	prep := preprocess.DefaultConfig()
	prep.Size = preprocess.Size{Height: 28, Width: 28}
	prep.CropSize = preprocess.Size{Height: 28, Width: 28}
	return core.NewRandom(cfg, prep, 2026)
}

func runDemo(args []string, stdout, stderr io.Writer) error {
	flags := newFlagSet("demo", "usage: probe demo [--out DIR]", stderr)
	out := flags.String("out", "perceiver-demo", "output folder: new, empty, or an earlier demo's (whose files alone are replaced)")
	if err := flags.Parse(args); err != nil {
		return errUsage
	}
	if flags.NArg() > 0 {
		flags.Usage()
		return errUsage
	}
	start := time.Now()
	dirs := struct{ model, data, images, features, attention, report string }{
		filepath.Join(*out, "model"), filepath.Join(*out, "data"), filepath.Join(*out, "images"),
		filepath.Join(*out, "features.parquet"), filepath.Join(*out, "attention"), filepath.Join(*out, "report"),
	}
	// Only files an earlier demo wrote (listed in its manifest) are replaced; a folder holding
	// anything else is refused.
	partial := probe.PartialDir(dirs.features)
	manifest, err := prepareDemoDir(*out, []string{dirs.model, dirs.data, dirs.images, dirs.features, partial, dirs.attention, dirs.report})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "probe demo: the model below has RANDOM weights (deterministic, seed 2026), not pretrained ones.")
	fmt.Fprintln(stdout, "It shows the pipeline end to end; its predictions and maps carry no meaning.")

	m, err := demoModel()
	if err != nil {
		return err
	}
	if err := manifest.begin(dirs.model); err != nil {
		return err
	}
	if err := saveModel(dirs.model, m); err != nil {
		return err
	}
	if err := manifest.done(dirs.model); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\n1. model      %s (%d latents × %d, %d parameters)\n", dirs.model, m.Config.NumLatents, m.Config.DLatents, m.Weights.NumParams())

	data := filepath.Join(dirs.data, "fashion-mnist")
	if err := manifest.begin(dirs.data); err != nil {
		return err
	}
	if err := copyEmbedded(data); err != nil {
		return err
	}
	src, err := probe.OpenSource(data)
	if err != nil {
		return err
	}
	sample := filepath.Join(dirs.data, "sample.png")
	if err := savePNG(sample, src.Item(src.Len()-1)); err != nil {
		return err
	}
	if err := manifest.done(dirs.data); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "2. data       %s (%d Fashion-MNIST images, MIT licence)\n", data, src.Len())
	n, err := saveDemoImages(dirs.images, src, 30)
	if err != nil {
		return err
	}
	if err := manifest.done(dirs.images); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "             %s (the last %d as PNG files, for probe serve)\n", dirs.images, n)

	steps := []struct {
		title   string
		args    []string
		outputs []string
	}{
		{"3. features   " + dirs.features, []string{"extract", "--model", dirs.model, "--data", data, "--out", dirs.features, "--layers", "all", "--batch", "32", "--quiet"}, []string{dirs.features, partial}},
		{"4. heatmaps   " + dirs.attention, []string{"attention", "--model", dirs.model, "--image", sample, "--out", dirs.attention, "--overlay"}, []string{dirs.attention}},
		{"5. probe      " + dirs.report, []string{"linear", "--features", dirs.features, "--report", dirs.report, "--C", "0.01,0.1,1,10"}, []string{dirs.report}},
	}
	for _, s := range steps {
		fmt.Fprintf(stdout, "%s\n   $ probe %s\n", s.title, strings.Join(s.args, " "))
		if err := manifest.begin(s.outputs...); err != nil {
			return err
		}
		cmd := commands[s.args[0]]
		if err := cmd.run(s.args[1:], io.Discard, stderr); err != nil {
			return fmt.Errorf("%s: %w", s.args[0], err)
		}
		if err := manifest.done(s.outputs...); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "\ndone in %s. Open %s for the layer-by-layer probe and %s for the maps.\n",
		time.Since(start).Round(time.Millisecond), filepath.Join(dirs.report, "report.md"), dirs.attention)
	fmt.Fprintf(stdout, "Explore them in the browser: probe serve --model %s --images %s --features %s\n", dirs.model, dirs.images, dirs.features)
	fmt.Fprintln(stdout, "With the real checkpoint: probe classify --model deepmind/vision-perceiver-fourier IMAGE")
	return nil
}

// saveModel writes a model folder that every command (and Hugging Face) can load.
func saveModel(dir string, m *core.Model) error {
	return m.Save(dir, map[string]string{"note": "random weights, seed 2026"})
}

func copyEmbedded(dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	entries, err := fs.ReadDir(demodata, "demodata")
	if err != nil {
		return err
	}
	for _, e := range entries {
		data, err := demodata.ReadFile("demodata/" + e.Name())
		if err != nil {
			return err
		}
		if err := outfile.WriteFile(filepath.Join(dst, e.Name()), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// saveDemoImages writes the source's last n images (the test split) as PNG files named by
// index and class, e.g. 0699-ankle-boot.png, and returns how many it wrote.
func saveDemoImages(dir string, src probe.Source, n int) (int, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	n = min(n, src.Len())
	for i := src.Len() - n; i < src.Len(); i++ {
		it := src.Item(i)
		class := strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
				return r
			}
			return '-'
		}, strings.ToLower(it.LabelName))
		if err := savePNG(filepath.Join(dir, fmt.Sprintf("%04d-%s.png", i, class)), it); err != nil {
			return 0, err
		}
	}
	return n, nil
}

func savePNG(path string, it probe.Item) error {
	return outfile.Write(path, func(w io.Writer) error { return png.Encode(w, it.Image) })
}

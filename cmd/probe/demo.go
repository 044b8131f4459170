package main

import (
	"embed"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/internal/outfile"
	"github.com/perceiverkit/perceiver/probe"
)

// demodata holds 500 training and 200 test images of Fashion-MNIST (MIT licence, see
// demodata/LICENSE), so that the demo needs no download, and in demodata/model the demo's model:
// a small Fourier Perceiver trained by `probe train` on Fashion-MNIST's 60,000 training images
// (the commands, seeds and test accuracy are in demodata/model/train*.json; the same folder is
// testdata/trained/fourier).
//
//go:embed demodata
var demodata embed.FS

func init() {
	register("demo", "run the whole pipeline offline on a small Perceiver trained on Fashion-MNIST", runDemo)
}

// demoModelDir is the embedded model folder.
const demoModelDir = "demodata/model"

// demoTrainRecord reads the embedded model's train.json: its evaluation on the test split.
func demoTrainRecord() (trainRecord, error) {
	var rec trainRecord
	raw, err := demodata.ReadFile(demoModelDir + "/" + trainJSON)
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(raw, &rec); err != nil {
		return rec, fmt.Errorf("%s/%s: %w", demoModelDir, trainJSON, err)
	}
	if rec.Eval == nil {
		return rec, fmt.Errorf("%s/%s: no evaluation", demoModelDir, trainJSON)
	}
	return rec, nil
}

func runDemo(args []string, stdout, stderr io.Writer) error {
	flags := newFlagSet("demo", "usage: probe demo [--out DIR]", stderr)
	out := flags.String("out", "perceiver-demo", "output folder: new, empty, or an earlier demo's (whose files alone are replaced)")
	if err := parseFlags(flags, args); err != nil {
		return errUsage
	}
	if flags.NArg() > 0 {
		return badUsage(flags)
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
	rec, err := demoTrainRecord()
	if err != nil {
		return err
	}
	if err := manifest.begin(dirs.model); err != nil {
		return err
	}
	if err := copyEmbeddedDir(demoModelDir, dirs.model); err != nil {
		return err
	}
	if err := manifest.done(dirs.model); err != nil {
		return err
	}
	m, err := core.Load(dirs.model)
	if err != nil {
		return err
	}
	defer m.Close()
	fmt.Fprintf(stdout, "probe demo: a small Fourier Perceiver trained by probe train on Fashion-MNIST's %s training images\n", groupDigits(rec.SourceItems))
	fmt.Fprintf(stdout, "(how: %s): test top-1 %.2f%% on the %s test images.\n",
		filepath.Join(dirs.model, "train*.json"), 100*rec.Eval.Top1, groupDigits(rec.Eval.N))
	fmt.Fprintf(stdout, "\n1. model      %s (%d latents × %d, %d parameters, test top-1 %.2f%%)\n", dirs.model, m.Config.NumLatents, m.Config.DLatents, m.Weights.NumParams(), 100*rec.Eval.Top1)

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

// groupDigits writes n with thousands separated by commas: 60000 → "60,000".
func groupDigits(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func copyEmbedded(dst string) error {
	return copyEmbeddedDir("demodata", dst)
}

// copyEmbeddedDir copies the files (not the folders) of an embedded folder into dst.
func copyEmbeddedDir(src, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	entries, err := fs.ReadDir(demodata, src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		data, err := demodata.ReadFile(src + "/" + e.Name())
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
	idx := indexRange(src.Len())[src.Len()-n:]
	for it, err := range src.Stream(idx) {
		if err != nil {
			return 0, err
		}
		i := it.Index
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

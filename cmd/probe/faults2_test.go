//go:build unix

package main

// End-to-end tests for the defects of issue 23 (numbers as in the issue). Each failed before its
// fix.

import (
	"encoding/json"
	"fmt"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/perceiverkit/perceiver/core/weights"
	"github.com/perceiverkit/perceiver/probe"
)

// runWithin runs args and fails the test instead of hanging when the command does not return
// within d (a write that opened a FIFO blocks until a reader comes).
func runWithin(t *testing.T, d time.Duration, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	type result struct {
		o, e string
		c    int
	}
	ch := make(chan result, 1)
	go func() {
		o, e, c := runCapture(args)
		ch <- result{o, e, c}
	}()
	select {
	case r := <-ch:
		return r.o, r.e, r.c
	case <-time.After(d):
		t.Fatalf("%v still running after %s (blocked on a FIFO?)", args, d)
	}
	return
}

// 3: ablate, similarity and flow refuse a symlink or FIFO among their outputs, leave its target
// as it was, and do not hang on the FIFO.
func TestWritersRefuseLinksAndFIFOs(t *testing.T) {
	dir := t.TempDir()
	keep := filepath.Join(dir, "keep.txt")
	os.WriteFile(keep, []byte("keep me"), 0o644)
	img := filepath.Join(tinyDir, "chelsea.png")
	plant := func(out, name string, fifo bool) string {
		os.MkdirAll(out, 0o755)
		p := filepath.Join(out, name)
		if fifo {
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Skip(err)
			}
		} else if err := os.Symlink("../keep.txt", p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	features := filepath.Join(dir, "f.parquet")
	runOK(t, "extract", "--model", tinyDir, "--data", imageFolder(t), "--out", features, "--layers", "decoder,block1_mean", "--quiet")
	f1, f2 := filepath.Join(tinyFlowDir, "frame1.png"), filepath.Join(tinyFlowDir, "frame2.png")
	cases := []struct {
		name, file string
		fifo       bool
		args       []string
	}{
		{"ablate", "ablation.json", false, []string{"ablate", "--model", tinyDir, "--image", img, "--quiet"}},
		{"ablate-png", "ablation.png", false, []string{"ablate", "--model", tinyDir, "--image", img, "--quiet"}},
		{"similarity", "similarity.json", false, []string{"similarity", "--features", features}},
		{"similarity-fifo", "similarity.json", true, []string{"similarity", "--features", features}},
		{"similarity-md", "report.md", true, []string{"similarity", "--features", features}},
		{"flow", "flow.flo", false, []string{"flow", "--model", tinyFlowDir, "--frame1", f1, "--frame2", f2}},
		{"flow-png", "flow.png", true, []string{"flow", "--model", tinyFlowDir, "--frame1", f1, "--frame2", f2}},
	}
	for _, c := range cases {
		out := filepath.Join(dir, c.name)
		p := plant(out, c.file, c.fifo)
		_, e, code := runWithin(t, time.Minute, append(c.args, "--out", out)...)
		if code == 0 || !strings.Contains(e, p) || !strings.Contains(e, "not a regular file") {
			t.Errorf("%s: exit %d, %q should refuse %s", c.name, code, e, p)
		}
		// No partial set: nothing else was written before the refusal.
		if left, _ := os.ReadDir(out); len(left) != 1 {
			t.Errorf("%s: %d files in %s after the refusal, want only the planted one", c.name, len(left), out)
		}
	}
	if b, _ := os.ReadFile(keep); string(b) != "keep me" {
		t.Errorf("keep.txt now holds %q", b)
	}
}

// 19: attention and explain check every output of the set before writing the first: a symlink
// among the later outputs leaves no figure behind.
func TestFigureSetsCheckedFirst(t *testing.T) {
	dir := t.TempDir()
	keep := filepath.Join(dir, "keep.txt")
	os.WriteFile(keep, []byte("keep me"), 0o644)
	img := filepath.Join(tinyDir, "chelsea.png")
	for _, c := range []struct {
		file string
		args []string
	}{
		{"maps.safetensors", []string{"attention", "--model", tinyDir, "--image", img, "--raw"}},
		{"rollout.png", []string{"attention", "--model", tinyDir, "--image", img}},
		{"summary.json", []string{"explain", "--model", tinyDir, "--image", img, "--methods", "saliency"}},
		{"maps.safetensors", []string{"explain", "--model", tinyDir, "--image", img, "--methods", "saliency", "--raw"}},
	} {
		out := filepath.Join(dir, c.args[0]+"-"+c.file)
		os.MkdirAll(out, 0o755)
		p := filepath.Join(out, c.file)
		os.Symlink("../keep.txt", p)
		_, e, code := runWithin(t, time.Minute, append(c.args, "--out", out)...)
		if code == 0 || !strings.Contains(e, p) {
			t.Errorf("%v: exit %d, %q should refuse %s", c.args, code, e, p)
		}
		if left, _ := os.ReadDir(out); len(left) != 1 {
			names := []string{}
			for _, l := range left {
				names = append(names, l.Name())
			}
			t.Errorf("%v: wrote %v before refusing %s", c.args, names, c.file)
		}
	}
	if b, _ := os.ReadFile(keep); string(b) != "keep me" {
		t.Errorf("keep.txt now holds %q", b)
	}
}

// 10: two frames of one stem (x.jpg, x.png) are refused before any work, naming both; a rerun
// over existing outputs is refused unless --force.
func TestFlowOutputNamesUnique(t *testing.T) {
	frames := t.TempDir()
	src, _ := os.ReadFile(filepath.Join(tinyFlowDir, "frame1.png"))
	second, _ := os.ReadFile(filepath.Join(tinyFlowDir, "frame2.png"))
	os.WriteFile(filepath.Join(frames, "a.png"), src, 0o644)
	os.WriteFile(filepath.Join(frames, "x.png"), second, 0o644)
	os.WriteFile(filepath.Join(frames, "z.png"), src, 0o644)
	f, _ := os.Open(filepath.Join(tinyFlowDir, "frame1.png"))
	im, err := png.Decode(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	jf, _ := os.Create(filepath.Join(frames, "x.jpg"))
	jpeg.Encode(jf, im, nil)
	jf.Close()
	out := t.TempDir()
	_, e, code := run(t, "flow", "--model", tinyFlowDir, "--frames-dir", frames, "--out", out)
	if code == 0 || !strings.Contains(e, "x.jpg") || !strings.Contains(e, "x.png") || !strings.Contains(e, "x.flo") {
		t.Errorf("exit %d, %q should name x.jpg, x.png and x.flo", code, e)
	}
	if left, _ := os.ReadDir(out); len(left) != 0 {
		t.Errorf("wrote %d files before refusing", len(left))
	}
	os.Remove(filepath.Join(frames, "x.jpg"))
	args := []string{"flow", "--model", tinyFlowDir, "--frames-dir", frames, "--out", out}
	runOK(t, args...)
	if _, e, code := run(t, args...); code == 0 || !strings.Contains(e, "--force") {
		t.Errorf("rerun: exit %d, %q should refuse and name --force", code, e)
	}
	runOK(t, append(args, "--force")...)
}

// 4: linear, similarity, export and serve refuse parts of one output made with other weights,
// naming both files; --allow-mixed reads them.
func TestReadersRefuseMixedWeights(t *testing.T) {
	dir := t.TempDir()
	data := idxDataSet(t, 6)
	out := filepath.Join(dir, "f.parquet")
	runOK(t, "extract", "--model", tinyDir, "--data", data, "--out", out, "--layers", "decoder", "--shard", "1/2", "--quiet")
	runOK(t, "extract", "--model", otherWeights(t), "--data", data, "--out", out, "--layers", "decoder", "--shard", "2/2", "--quiet")
	for _, args := range [][]string{
		{"linear", "--features", dir},
		{"similarity", "--features", dir, "--out", filepath.Join(dir, "sim")},
		{"export", "--features", dir, "--format", "csv", "--out", filepath.Join(dir, "x.csv")},
	} {
		_, e, code := run(t, args...)
		if code == 0 || !strings.Contains(e, "f-part-1-of-2.parquet") || !strings.Contains(e, "f-part-2-of-2.parquet") || !strings.Contains(e, "weights.sha256") {
			t.Errorf("%v: exit %d, %q should name both parts and weights.sha256", args, code, e)
		}
	}
	runOK(t, "export", "--features", dir, "--format", "csv", "--out", filepath.Join(dir, "x.csv"), "--allow-mixed")
}

// 11: export --format npy writes ids one per row whatever they hold (tabs, newlines): as JSON lines.
// 16: export keeps a missing label apart from the label -1 (which extract refuses).
func TestExportIDsAndLabels(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a.png", "b.png", "c.png"} {
		writePNG(t, filepath.Join(dir, name), 32, 32)
	}
	manifest := filepath.Join(dir, "list.csv")
	os.WriteFile(manifest, []byte("path,label\na.png,1\nb.png,-1\n"), 0o644)
	_, e, code := run(t, "extract", "--model", tinyDir, "--data", manifest, "--out", filepath.Join(dir, "neg.parquet"), "--layers", "decoder", "--quiet")
	if code == 0 || !strings.Contains(e, "-1") || !strings.Contains(e, "b.png") {
		t.Errorf("a label of -1: exit %d, %q should refuse it naming b.png", code, e)
	}
	// Ids with a tab and a newline (an image folder can hold such names).
	odd := filepath.Join(dir, "odd")
	os.MkdirAll(odd, 0o755)
	for _, name := range []string{"x\ty.png", "line\nbreak.png", "plain.png"} {
		writePNG(t, filepath.Join(odd, name), 32, 32)
	}
	features := filepath.Join(dir, "f.parquet")
	runOK(t, "extract", "--model", tinyDir, "--data", odd, "--out", features, "--layers", "decoder", "--quiet")
	npy := filepath.Join(dir, "npy")
	runOK(t, "export", "--features", features, "--format", "npy", "--out", npy)
	b, err := os.ReadFile(filepath.Join(npy, "ids.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines for 3 rows: %q", len(lines), b)
	}
	var ids []string
	for _, l := range lines {
		var rec struct{ ID, Split string }
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		ids = append(ids, rec.ID)
	}
	if !slices.Contains(ids, "x\ty.png") || !slices.Contains(ids, "line\nbreak.png") {
		t.Errorf("ids %q", ids)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, syscall.EPIPE }

// 18: export's errors carry its own prefix, not the package's ("probe export: linear: …").
func TestExportErrorPrefix(t *testing.T) {
	features := filepath.Join(t.TempDir(), "f.parquet")
	runOK(t, "extract", "--model", tinyDir, "--data", idxDataSet(t, 3), "--out", features, "--layers", "decoder", "--quiet")
	var e strings.Builder
	code := runMain([]string{"export", "--features", features, "--format", "csv"}, failingWriter{}, &e)
	if code == 0 || strings.Contains(e.String(), "linear:") || !strings.HasPrefix(e.String(), "probe export: writing csv") {
		t.Errorf("exit %d, %q", code, e.String())
	}
}

// 5: faithfulness --resume checks the run's identity as extract does: other weights of the same
// shapes, or a changed source at the same path, are refused naming the key; the log is untouched.
// 17: --resume --limit 2 after a 4-image run reports 2 images.
func TestFaithfulnessResumeIdentity(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	writeIDX(t, data, 4, 1, 5)
	out := filepath.Join(dir, "out")
	base := []string{"faithfulness", "--data", data, "--methods", "saliency,random", "--steps", "2", "--quiet", "--out", out}
	model := filepath.Join(dir, "model") // one path, whose weights change below
	os.MkdirAll(model, 0o755)
	for _, name := range []string{"config.json", "preprocessor_config.json", "model.safetensors"} {
		b, _ := os.ReadFile(filepath.Join(tinyDir, name))
		os.WriteFile(filepath.Join(model, name), b, 0o644)
	}
	runOK(t, append(base, "--model", model)...)
	log := filepath.Join(out, "images.jsonl")
	before, _ := os.ReadFile(log)
	refused := func(what, key string, args ...string) {
		t.Helper()
		_, e, code := run(t, args...)
		if code == 0 || !strings.Contains(e, key) {
			t.Errorf("%s: exit %d, %q should name %s", what, code, e, key)
		}
		if after, _ := os.ReadFile(log); string(after) != string(before) {
			t.Errorf("%s: images.jsonl changed", what)
		}
	}
	other := otherWeights(t)
	b, _ := os.ReadFile(filepath.Join(other, "model.safetensors"))
	os.WriteFile(filepath.Join(model, "model.safetensors"), b, 0o644)
	refused("other weights", "weights.sha256", append(base, "--model", model, "--resume")...)
	b, _ = os.ReadFile(filepath.Join(tinyDir, "model.safetensors"))
	os.WriteFile(filepath.Join(model, "model.safetensors"), b, 0o644)
	writeIDX(t, data, 4, 2, 5) // the same folder, other images
	refused("changed source", "source.digest", append(base, "--model", model, "--resume")...)
	writeIDX(t, data, 4, 1, 5)
	runOK(t, append(base, "--model", tinyDir, "--resume", "--limit", "2")...) // the same weights by another path
	if rep := readReport(t, out); rep["images"] != 2.0 {
		t.Errorf("--resume --limit 2 reports %v images, want 2", rep["images"])
	}
}

// 2: a demo output whose data folder was replaced by a link to the user's folder (holding files of
// the demo's names), or whose listed file was replaced by the user's own, is refused and nothing of
// the user's is removed: removal never follows a link and compares each file's identity.
func TestDemoNeverRemovesThroughLinks(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo four times")
	}
	dir := t.TempDir()
	user := filepath.Join(dir, "user")
	os.MkdirAll(user, 0o755)
	precious := filepath.Join(user, "train-images-idx3-ubyte")
	os.WriteFile(precious, []byte("precious"), 0o644)
	out := filepath.Join(dir, "u6")
	// A real demo output first, so the manifest is genuine.
	runOK(t, "demo", "--out", out)
	fm := filepath.Join(out, "data", "fashion-mnist")
	if err := os.RemoveAll(fm); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(user, fm); err != nil {
		t.Fatal(err)
	}
	_, e, code := run(t, "demo", "--out", out)
	if b, err := os.ReadFile(precious); err != nil || string(b) != "precious" {
		t.Fatalf("the user's file behind the link was removed or changed (%v); exit %d %s", err, code, e)
	}
	if code == 0 || !strings.Contains(e, "link") {
		t.Errorf("exit %d, %q should refuse the link", code, e)
	}

	// A listed file replaced by another of the same name is not the demo's: kept, and refused.
	out2 := filepath.Join(dir, "u7")
	runOK(t, "demo", "--out", out2)
	sample := filepath.Join(out2, "data", "sample.png")
	os.Remove(sample)
	os.WriteFile(sample, []byte("mine"), 0o644)
	_, e, code = run(t, "demo", "--out", out2)
	if b, _ := os.ReadFile(sample); string(b) != "mine" {
		t.Errorf("the user's file of the demo's name was removed (exit %d %s)", code, e)
	}
	if code == 0 {
		t.Error("a folder holding the user's file was accepted")
	}
}

// 15 (and issue 29 item 7): one target parser for every command that takes --target: an index,
// top1, a label or one of its names; a negative number is refused in the same words everywhere.
func TestOneTargetParser(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(tinyDir, "chelsea.png")
	cmds := map[string][]string{
		"ablate":  {"ablate", "--model", tinyDir, "--image", img, "--out", filepath.Join(dir, "a"), "--quiet", "--latents", "0-1"},
		"dump":    {"dump", "--model", tinyDir, "--image", img, "--grads"},
		"explain": {"explain", "--model", tinyDir, "--image", img, "--out", filepath.Join(dir, "e"), "--methods", "saliency"},
	}
	for name, args := range cmds {
		for _, bad := range []string{"-1", "-2"} {
			a := append(slices.Clone(args), "--target", bad)
			if name == "dump" {
				a = append(a, "--out", filepath.Join(dir, name+bad+".safetensors"))
			}
			_, e, code := run(t, a...)
			if code == 0 || !strings.Contains(e, "--target "+bad) || !strings.Contains(e, "top1") || strings.Count(strings.TrimSpace(e), "\n") > 0 {
				t.Errorf("%s --target %s: exit %d, %q should refuse it in one line pointing to top1", name, bad, code, e)
			}
		}
		// A label works everywhere (the tiny model's classes are class_0 … class_4).
		a := append(slices.Clone(args), "--target", "class_3")
		if name == "dump" {
			a = append(a, "--out", filepath.Join(dir, "label.safetensors"))
		} else {
			a[slices.Index(a, "--out")+1] += "-label"
		}
		if _, e, code := run(t, a...); code != 0 {
			t.Errorf("%s --target class_3: exit %d: %s", name, code, e)
		}
	}
	f, err := weights.OpenSafetensors(filepath.Join(dir, "label.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Metadata["target"] != "3" {
		t.Errorf("dump --target class_3 differentiated %q, want 3", f.Metadata["target"])
	}
}

// 6: explain and ablate check their outputs for NaN and ±Inf before writing anything, naming what
// is not finite (before, PNGs were written and then "json: unsupported value: NaN").
func TestExplainAblateRefuseNonFinite(t *testing.T) {
	img := filepath.Join(tinyDir, "chelsea.png")
	huge := tinyWith(t, "perceiver.decoder.decoder.final_layer.weight", 3e38)
	for _, args := range [][]string{
		{"explain", "--model", huge, "--image", img, "--methods", "saliency,integrated-gradients"},
		{"ablate", "--model", huge, "--image", img, "--quiet"},
	} {
		out := t.TempDir()
		fails(t, []string{"non-finite"}, append(args, "--out", out)...)
		if entries, _ := os.ReadDir(out); len(entries) > 0 {
			t.Errorf("%s wrote %d files from non-finite outputs", args[0], len(entries))
		}
	}
}

// 7: similarity on huge finite features (~3e37) gives the matrix of the same features at an
// ordinary scale (every method is invariant to scaling a representation: linear and debiased CKA,
// RBF CKA with the median-distance bandwidth, RSA's correlations), never nulls or an +Inf error.
func TestSimilarityHugeFeatures(t *testing.T) {
	dir := t.TempDir()
	cols := []probe.Column{{Name: "a", Dim: 5}, {Name: "b", Dim: 3}}
	write := func(path string, scale float32) {
		w, err := probe.Create(path, cols, probe.WriterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		x := uint32(7)
		for i := 0; i < 40; i++ {
			row := [][]float32{make([]float32, 5), make([]float32, 3)}
			for _, v := range row {
				for k := range v {
					x = x*1664525 + 1013904223
					v[k] = (float32(x>>8)/float32(1<<24) - 0.5) * scale
				}
			}
			row[1][0] += row[0][0] // related columns
			if err := w.Write(probe.Row{Index: i, ID: fmt.Sprint(i), Vectors: row}); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "small.parquet"), 2)
	write(filepath.Join(dir, "huge.parquet"), 6e37)
	for _, method := range []string{"cka", "cka-debiased", "cka-rbf", "rsa"} {
		read := func(name string) [][]float64 {
			out := filepath.Join(dir, method+"-"+name)
			runOK(t, "similarity", "--features", filepath.Join(dir, name+".parquet"), "--method", method, "--out", out)
			b, _ := os.ReadFile(filepath.Join(out, "similarity.json"))
			var r struct{ Matrix [][]*float64 }
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatal(err)
			}
			m := make([][]float64, len(r.Matrix))
			for i, row := range r.Matrix {
				for _, v := range row {
					if v == nil {
						t.Fatalf("%s on %s: a null in the matrix", method, name)
					}
					m[i] = append(m[i], *v)
				}
			}
			return m
		}
		small, huge := read("small"), read("huge")
		for i := range small {
			for j := range small[i] {
				if math.Abs(small[i][j]-huge[i][j]) > 1e-6 { // float64 accumulation of float32 data
					t.Errorf("%s [%d][%d]: %g at 6e37, %g at 2", method, i, j, huge[i][j], small[i][j])
				}
			}
		}
	}
}

// 14: layers refuses a --size past the limits instead of printing shapes that overflowed.
func TestLayersSizeLimits(t *testing.T) {
	for _, size := range []string{"4000000000x4000000000", "3037000500x3037000500", "100000x100000"} {
		stdout, e, code := run(t, "layers", "--model", tinyDir, "--size", size)
		if code == 0 || !strings.Contains(e, "--size") || strings.Contains(stdout, ",-") || strings.Contains(stdout, "[-") {
			t.Errorf("--size %s: exit %d, %q %q", size, code, e, stdout)
		}
	}
	runOK(t, "layers", "--model", tinyDir, "--size", "224x224")
}

package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/core/weights"
	"github.com/perceiverkit/perceiver/train"
)

// The training references (testdata/train/ref/*.safetensors) are made by
// tools/train/make_reference.py: torch.optim.AdamW in float64 on a torch transcription of Hugging
// Face's modules that reproduces the HF fixtures to 9.7e-7 (tools/train/check_fixtures.py), from
// the tiny fixture checkpoints, on the 25 images of testdata/train/images.
const trainData = "../../testdata/train"

var trainFixture = map[string]string{"fourier": "../../testdata/tiny", "learned": "../../testdata/tiny-learned", "conv": "../../testdata/tiny-conv"}

// trainModelDir assembles a tiny fixture model with the training tests' processor settings (no
// centre crop: the 28×32 images are resized to the model's input).
func trainModelDir(t *testing.T, arch string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), arch)
	os.MkdirAll(dir, 0o755)
	for _, c := range [][2]string{
		{filepath.Join(trainFixture[arch], "config.json"), "config.json"},
		{filepath.Join(trainFixture[arch], "model.safetensors"), "model.safetensors"},
		{filepath.Join(trainData, arch, "preprocessor_config.json"), "preprocessor_config.json"},
	} {
		b, err := os.ReadFile(c[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, c[1]), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// specArgs are the spec's test options: batch 10 over 25 images (steps of 10, 10, 5 and epoch
// wraps), source order, 12 updates, lr 3e-3, weight decay 0.5, warmup 3, cosine.
var specArgs = []string{"--data", trainData + "/images", "--batch", "10", "--steps", "12", "--shuffle=false",
	"--lr", "3e-3", "--weight-decay", "0.5", "--warmup", "3", "--schedule", "cosine", "--quiet"}

func openST(t *testing.T, path string) *weights.File {
	t.Helper()
	f, err := weights.OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func readTrainJSON(t *testing.T, dir string) trainRecord {
	t.Helper()
	var rec trainRecord
	b, err := os.ReadFile(filepath.Join(dir, trainJSON))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

// TestTrainMatchesTorchAdamW: 12 updates end at the weights torch.optim.AdamW (float64) reaches
// from the same start, per tensor max|Δ| ≤ 1e-3·max|ref|; per-update losses within 1e-4
// relative; learning rates equal; attention key biases, whose gradient is rounding noise that
// Adam turns into steps of up to lr, within 2·Σ lr_k (the spec's bound). With --train decoder
// every other tensor is byte-identical to the input, and --labels 3 --seed 5 writes the fresh
// layer the reference started from, byte for byte.
func TestTrainMatchesTorchAdamW(t *testing.T) {
	cases := []struct {
		name, arch string
		extra      []string
	}{
		{"all-fourier", "fourier", nil},
		{"all-learned", "learned", nil},
		{"all-conv", "conv", nil},
		{"decoder-labels3-fourier", "fourier", []string{"--train", "decoder", "--labels", "3", "--seed", "5"}},
		{"decoder-labels3-conv", "conv", []string{"--train", "decoder", "--labels", "3", "--seed", "5"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			model := trainModelDir(t, c.arch)
			out := filepath.Join(t.TempDir(), "out")
			args := append([]string{"train", "--model", model, "--out", out}, specArgs...)
			if _, stderr, code := run(t, append(args, c.extra...)...); code != 0 {
				t.Fatalf("probe train: exit %d: %s", code, stderr)
			}
			ref := openST(t, filepath.Join(trainData, "ref", c.name+".safetensors"))
			got := openST(t, filepath.Join(out, "model.safetensors"))
			rec := readTrainJSON(t, out)

			refLoss, _ := ref.Get("loss")
			refLR, _ := ref.Get("lr")
			lrSum := 0.0
			for k := range refLR.Data {
				lrSum += float64(refLR.Data[k])
				if d := math.Abs(rec.LRPerStep[k] - float64(refLR.Data[k])); d > 1e-9 {
					t.Errorf("lr of update %d: %v, reference %v", k, rec.LRPerStep[k], refLR.Data[k])
				}
			}
			if len(rec.Loss) != 12 {
				t.Fatalf("%d losses, want 12", len(rec.Loss))
			}
			worstLoss := 0.0
			for k, l := range rec.Loss {
				rel := math.Abs(l-float64(refLoss.Data[k])) / math.Abs(float64(refLoss.Data[k]))
				worstLoss = max(worstLoss, rel)
				if rel > 1e-4 {
					t.Errorf("loss of update %d: %.7f, reference %.7f (rel %.1e > 1e-4)", k, l, refLoss.Data[k], rel)
				}
			}

			start := openST(t, filepath.Join(model, "model.safetensors"))
			decoderOnly := len(c.extra) > 0
			worst, worstName := 0.0, ""
			n := 0
			for name, r := range ref.Tensors {
				pname, ok := strings.CutPrefix(name, "final.")
				if !ok || strings.HasSuffix(pname, "num_batches_tracked") {
					continue
				}
				n++
				g := got.Tensors[pname]
				if g == nil || len(g.Data) != len(r.Data) {
					t.Fatalf("%s: missing or mis-shaped in the output", pname)
				}
				if decoderOnly && !strings.HasPrefix(pname, "perceiver.decoder.") {
					s := start.Tensors[pname]
					for i := range s.Data {
						if math.Float32bits(s.Data[i]) != math.Float32bits(g.Data[i]) {
							t.Fatalf("%s[%d] changed under --train decoder: %v → %v", pname, i, s.Data[i], g.Data[i])
						}
					}
					continue
				}
				var maxRef, maxD float64
				for i := range r.Data {
					maxRef = max(maxRef, math.Abs(float64(r.Data[i])))
					maxD = max(maxD, math.Abs(float64(g.Data[i]-r.Data[i])))
				}
				if strings.HasSuffix(pname, "attention.self.key.bias") {
					if maxD > 2*lrSum {
						t.Errorf("%s: max|Δ| %.2e > 2·Σ lr_k = %.2e", pname, maxD, 2*lrSum)
					}
					continue
				}
				rel := maxD / max(maxRef, 1e-30)
				if rel > worst {
					worst, worstName = rel, pname
				}
				if rel > 1e-3 {
					t.Errorf("%s: max|Δ|/max|ref| = %.2e > 1e-3", pname, rel)
				}
			}
			t.Logf("%d tensors, worst %.2e (%s); losses worst rel %.1e", n, worst, worstName, worstLoss)

			if decoderOnly {
				want, _ := os.ReadFile(filepath.Join(trainData, "ref", c.name+"-init.safetensors"))
				have, _ := os.ReadFile(filepath.Join(out, trainInit))
				if !bytes.Equal(want, have) {
					t.Errorf("init.safetensors of --labels 3 --seed 5 differs from the one the reference started from")
				}
				var cfg core.Config
				b, _ := os.ReadFile(filepath.Join(out, "config.json"))
				json.Unmarshal(b, &cfg)
				if cfg.NumLabels() != 3 || cfg.ID2Label["0"] != "cat" || cfg.ID2Label["2"] != "rocket" {
					t.Errorf("config.json id2label %v, want the source's 3 class names", cfg.ID2Label)
				}
			}
		})
	}
}

// TestTrainPreprocessingMatchesPIL: the references' pixels (PIL, as PerceiverImageProcessor)
// are the pixels the Go run trains on, so the comparison above is of training alone.
func TestTrainPreprocessingMatchesPIL(t *testing.T) {
	for _, arch := range []string{"fourier", "learned", "conv"} {
		m, err := core.Load(trainModelDir(t, arch))
		if err != nil {
			t.Fatal(err)
		}
		d, err := openLabelled(trainData+"/images", "data", m.Config.NumLabels(), m.Preprocessor, (&modelFlags{}).decodeOptions())
		if err != nil {
			t.Fatal(err)
		}
		ref := openST(t, filepath.Join(trainData, "ref", "all-"+arch+".safetensors"))
		px, _ := ref.Get("pixels")
		per := len(px.Data) / d.Len()
		got := make([]float32, per)
		for i := range d.Len() {
			if err := d.Pixels(got, i); err != nil {
				t.Fatal(err)
			}
			for j, v := range got {
				if math.Abs(float64(v-px.Data[i*per+j])) > 1e-6 {
					t.Fatalf("%s: image %d value %d: %v, PIL %v", arch, i, j, v, px.Data[i*per+j])
				}
			}
		}
		m.Close()
	}
}

// TestTrainLabelsSeed: the same seed gives the same fresh layer, another seed another.
func TestTrainLabelsSeed(t *testing.T) {
	model := trainModelDir(t, "fourier")
	var inits [][]byte
	for _, seed := range []string{"5", "5", "6"} {
		out := filepath.Join(t.TempDir(), "out")
		if _, stderr, code := run(t, "train", "--model", model, "--out", out, "--data", trainData+"/images", "--steps", "1", "--labels", "4", "--seed", seed, "--quiet"); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		b, _ := os.ReadFile(filepath.Join(out, trainInit))
		inits = append(inits, b)
		var cfg core.Config
		cb, _ := os.ReadFile(filepath.Join(out, "config.json"))
		json.Unmarshal(cb, &cfg)
		if cfg.ID2Label["3"] != "class_3" {
			t.Errorf("4 outputs for 3 source classes: id2label %v, want class_i names", cfg.ID2Label)
		}
	}
	if !bytes.Equal(inits[0], inits[1]) || bytes.Equal(inits[0], inits[2]) {
		t.Errorf("init.safetensors: seed 5 twice equal %v, seed 6 differs %v", bytes.Equal(inits[0], inits[1]), !bytes.Equal(inits[0], inits[2]))
	}
}

// TestTrainResume: a run stopped after update 5 (as a kill leaves it: the last checkpoint and
// no outputs) and resumed ends byte-identical to an uninterrupted run, shuffled; a resume with
// other options is refused, naming them.
func TestTrainResume(t *testing.T) {
	model := trainModelDir(t, "learned")
	args := []string{"train", "--model", model, "--data", trainData + "/images", "--batch", "7", "--steps", "9", "--seed", "3", "--quiet"}
	whole := filepath.Join(t.TempDir(), "whole")
	if _, stderr, code := run(t, append(args, "--out", whole)...); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	part := filepath.Join(t.TempDir(), "part")
	trainStopAfter = 5
	_, stderr, code := run(t, append(args, "--out", part, "--checkpoint-steps", "2")...)
	trainStopAfter = 0
	if code == 0 || !strings.Contains(stderr, "stopped after update 5") {
		t.Fatalf("the stopped run: exit %d: %s", code, stderr)
	}
	if fileExists(filepath.Join(part, trainWeights)) || !fileExists(filepath.Join(part, trainCheckpoint)) {
		t.Fatalf("a stopped run must leave its checkpoint and no model")
	}
	_, stderr, code = run(t, append(args, "--out", part, "--lr", "2e-3", "--resume")...)
	if code == 0 || !strings.Contains(stderr, "options") || !strings.Contains(stderr, "another run") {
		t.Fatalf("resume with another --lr: exit %d: %s", code, stderr)
	}
	_, stderr, code = run(t, append(args, "--out", part)...)
	if code == 0 || !strings.Contains(stderr, "--resume") {
		t.Fatalf("rerun without --resume onto a checkpoint: exit %d: %s", code, stderr)
	}
	if _, stderr, code := run(t, append(args, "--out", part, "--resume")...); code != 0 {
		t.Fatalf("resume: exit %d: %s", code, stderr)
	}
	a, _ := os.ReadFile(filepath.Join(whole, trainWeights))
	b, _ := os.ReadFile(filepath.Join(part, trainWeights))
	if !bytes.Equal(a, b) {
		t.Errorf("resumed model.safetensors differs from the uninterrupted run's")
	}
	ra, rb := readTrainJSON(t, whole), readTrainJSON(t, part)
	for k := range ra.Loss {
		if ra.Loss[k] != rb.Loss[k] {
			t.Errorf("loss of update %d: %v uninterrupted, %v resumed", k, ra.Loss[k], rb.Loss[k])
		}
	}
	if fileExists(filepath.Join(part, trainCheckpoint)) {
		t.Errorf("a finished run keeps no checkpoint")
	}
}

// TestTrainBadInput: each error is one line, before anything is written.
func TestTrainBadInput(t *testing.T) {
	fourier := trainModelDir(t, "fourier")
	empty := filepath.Join(t.TempDir(), "empty.csv")
	os.WriteFile(empty, []byte("path,label\n"), 0o644)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--model", fourier, "--labels", "0"}, "--labels 0"},
		{[]string{"--model", fourier, "--lr", "0"}, "--lr 0"},
		{[]string{"--model", fourier, "--lr", "-1e-3"}, "--lr -0.001"},
		{[]string{"--model", fourier, "--lr", "NaN"}, "--lr NaN"},
		{[]string{"--model", fourier, "--batch", "0"}, "--batch 0"},
		{[]string{"--model", fourier, "--schedule", "linear"}, "--schedule"},
		{[]string{"--model", fourier, "--train", "encoder"}, "--train"},
		{[]string{"--model", fourier, "--epochs", "2", "--steps", "3"}, "not both"},
		{[]string{"--model", fourier, "--init", "x.json"}, "one of --model"},
		{[]string{"--model", fourier, "--data", empty}, "empty.csv: no rows"},
		{[]string{"--model", "../../testdata/tiny-flow", "--train", "decoder"}, "no classification decoder"},
		{[]string{"--model", fourier, "--batch", "100000000"}, "--batch 100000000: a training step needs"},
	}
	for _, c := range cases {
		out := filepath.Join(t.TempDir(), "out")
		args := append([]string{"train", "--data", trainData + "/images", "--out", out, "--quiet"}, c.args...)
		// --data given twice: the last wins (the empty source case).
		_, stderr, code := run(t, args...)
		if code != 1 || !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("%v: exit %d, stderr %q; want one line with %q", c.args, code, stderr, c.want)
		}
		if fileExists(out) {
			t.Errorf("%v: wrote %s before failing", c.args, out)
		}
	}

	// A label outside the model's classes, without --labels: a 2-class model on 3 classes.
	two := trainModelDir(t, "fourier")
	var cfg map[string]any
	b, _ := os.ReadFile(filepath.Join(two, "config.json"))
	json.Unmarshal(b, &cfg)
	cfg["id2label"] = map[string]string{"0": "a", "1": "b"}
	cfg["label2id"] = map[string]int{"a": 0, "b": 1}
	b, _ = json.Marshal(cfg)
	os.WriteFile(filepath.Join(two, "config.json"), b, 0o644)
	// Its final layer must have 2 outputs for the model to load.
	f, err := weights.OpenSafetensors(filepath.Join(two, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	var ts []*weights.Tensor
	for _, name := range f.Names() {
		tt := f.Tensors[name]
		switch name {
		case train.FinalLayerNames[0]:
			tt = &weights.Tensor{Name: name, DType: "F32", Shape: []int{2, tt.Shape[1]}, Data: tt.Data[:2*tt.Shape[1]]}
		case train.FinalLayerNames[1]:
			tt = &weights.Tensor{Name: name, DType: "F32", Shape: []int{2}, Data: tt.Data[:2]}
		}
		ts = append(ts, tt)
	}
	if err := weights.WriteSafetensors(filepath.Join(two, "model2.safetensors"), ts, nil); err != nil {
		t.Fatal(err)
	}
	f.Close()
	os.Rename(filepath.Join(two, "model2.safetensors"), filepath.Join(two, "model.safetensors"))
	out := filepath.Join(t.TempDir(), "out")
	_, stderr, code := run(t, "train", "--model", two, "--data", trainData+"/images", "--out", out, "--quiet")
	if code != 1 || !strings.Contains(stderr, "label 2, outside the model's 2 classes") || fileExists(out) {
		t.Errorf("label out of range: exit %d, %q", code, stderr)
	}
}

// TestTrainNaNLoss: a loss that stops being finite (lr 1e30 blows the weights up) stops the run,
// naming the update, and keeps the last good checkpoint.
func TestTrainNaNLoss(t *testing.T) {
	model := trainModelDir(t, "fourier")
	out := filepath.Join(t.TempDir(), "out")
	_, stderr, code := run(t, "train", "--model", model, "--data", trainData+"/images", "--out", out, "--steps", "6", "--batch", "5",
		"--lr", "1e30", "--checkpoint-steps", "1", "--quiet")
	if code != 1 || !strings.Contains(stderr, "is not finite") || !strings.Contains(stderr, "last good checkpoint") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	c, err := train.LoadCheckpoint(filepath.Join(out, trainCheckpoint))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range c.State.Loss {
		if math.IsNaN(l) || math.IsInf(l, 0) {
			t.Errorf("the kept checkpoint holds a non-finite loss")
		}
	}
	if !strings.Contains(stderr, "(step "+strconv.Itoa(c.State.Step+1)+" of the run)") {
		t.Errorf("the error names step %d? %s", c.State.Step+1, stderr)
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/perceiverkit/perceiver/core"
)

// The trained models in testdata/trained/{fourier,learned,conv} were made by `probe train` on
// Fashion-MNIST's 60,000 training images (the command is in each train.json). torch_eval.json
// beside each records their top-1 on the 10,000 test images when the weights are loaded into the
// torch transcription of Hugging Face's modules (tools/train/fmnist_torch.py eval).
const trainedDir = "../../testdata/trained"

// fashionTest is Debian's dataset-fashion-mnist test split (CI installs it).
const fashionTest = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"

// TestDemoShipsTrainedModel: the demo's embedded model is testdata/trained/fourier, byte for
// byte, and its train.json records the full test split's top-1, at least 85%.
func TestDemoShipsTrainedModel(t *testing.T) {
	for _, name := range []string{"config.json", "preprocessor_config.json", "model.safetensors", "train.json", "train-stage1.json"} {
		a, err := demodata.ReadFile(demoModelDir + "/" + name)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(trainedDir, "fourier", name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("cmd/probe/demodata/model/%s differs from testdata/trained/fourier/%s", name, name)
		}
	}
	rec, err := demoTrainRecord()
	if err != nil {
		t.Fatal(err)
	}
	if rec.Eval.Source != "fashion-mnist t10k" || rec.Eval.N != 10000 || rec.Eval.Top1 < 0.85 {
		t.Errorf("train.json eval %+v: want fashion-mnist t10k, 10000 images, top-1 ≥ 0.85", *rec.Eval)
	}
	if rec.SourceItems != 60000 {
		t.Errorf("trained on %d images, want Fashion-MNIST's 60,000", rec.SourceItems)
	}
}

// TestTrainedModelsAccuracy re-evaluates each shipped model on the full test split: the top-1
// train.json records, exactly (same weights, same forward pass), and within 0.3 points of the
// torch transcription's (torch_eval.json, float32).
func TestTrainedModelsAccuracy(t *testing.T) {
	if testing.Short() {
		t.Skip("evaluates 10,000 images per model")
	}
	if _, err := os.Stat(fashionTest); err != nil {
		t.Skipf("%s: %v (apt-get install dataset-fashion-mnist)", fashionTest, err)
	}
	for _, arch := range []string{"fourier", "learned", "conv"} {
		dir := filepath.Join(trainedDir, arch)
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("%s: %v", dir, err)
			continue
		}
		t.Run(arch, func(t *testing.T) {
			m, err := core.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			d, err := openLabelled(fashionTest, "eval", m.Config.NumLabels(), m.Preprocessor, (&modelFlags{}).decodeOptions())
			if err != nil {
				t.Fatal(err)
			}
			e, err := evaluate(m, d, 250)
			if err != nil {
				t.Fatal(err)
			}
			rec := readTrainJSON(t, dir)
			if rec.Eval == nil || rec.Eval.N != 10000 || rec.Eval.Top1 != e.Top1 {
				t.Errorf("top-1 %.4f on %d images; train.json says %+v", e.Top1, e.N, rec.Eval)
			}
			var te struct {
				N       int     `json:"n"`
				Top1F32 float64 `json:"top1_float32"`
				Top1F64 float64 `json:"top1_float64"`
			}
			raw, err := os.ReadFile(filepath.Join(dir, "torch_eval.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(raw, &te); err != nil {
				t.Fatal(err)
			}
			if te.N != 10000 || math.Abs(te.Top1F32-e.Top1) > 0.003 || math.Abs(te.Top1F64-e.Top1) > 0.003 {
				t.Errorf("Go top-1 %.4f, torch %.4f (float32) / %.4f (float64) on %d images: more than 0.3 points apart", e.Top1, te.Top1F32, te.Top1F64, te.N)
			}
			t.Logf("%s: top-1 %.2f%% (torch float32 %.2f%%, float64 %.2f%%)", arch, 100*e.Top1, 100*te.Top1F32, 100*te.Top1F64)
		})
	}
}

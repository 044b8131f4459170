package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/core/preprocess"
	"github.com/perceiverkit/perceiver/explain"
	"github.com/perceiverkit/perceiver/faithfulness"
)

// readF64Tensors reads a safetensors file of float64 tensors (tools/roadsanity/make_references.py
// writes them; core/weights would round them to float32) and its metadata.
func readF64Tensors(t *testing.T, path string) (map[string][]float64, map[string]string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(raw)
	var header map[string]json.RawMessage
	if err := json.Unmarshal(raw[8:8+n], &header); err != nil {
		t.Fatal(err)
	}
	out, meta := map[string][]float64{}, map[string]string{}
	for k, v := range header {
		if k == "__metadata__" {
			json.Unmarshal(v, &meta)
			continue
		}
		var ti struct {
			DType   string `json:"dtype"`
			Offsets [2]int `json:"data_offsets"`
		}
		if err := json.Unmarshal(v, &ti); err != nil || ti.DType != "F64" {
			t.Fatalf("%s: %s: %v %s", path, k, err, ti.DType)
		}
		vals := make([]float64, (ti.Offsets[1]-ti.Offsets[0])/8)
		for i := range vals {
			vals[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8+int(n)+ti.Offsets[0]+8*i:]))
		}
		out[k] = vals
	}
	return out, meta
}

type sanityJSON struct {
	Target int      `json:"target"`
	Groups []string `json:"groups"`
	Steps  []struct {
		Randomized []string                           `json:"randomized"`
		Methods    map[string]faithfulness.Similarity `json:"methods"`
	} `json:"steps"`
	RandomLogit struct {
		Class   int                                `json:"class"`
		Methods map[string]faithfulness.Similarity `json:"methods"`
	} `json:"random_logit"`
}

// TestSanityCommand runs probe sanity on the tiny Fourier fixture with --seed 7 and
// --save-randomized, then checks:
//   - sanity.json's shape: groups in the order, step 0 with nothing randomised and every
//     similarity 1, step k with the first k groups, a random-logit class other than the target;
//   - the checkpoints: each differs from the one before (the original model for step 1) in every
//     tensor of its own group and in no other;
//   - the fingerprint (Σ and Σ² of all tensors) of each equals that of the
//     checkpoints the references were made from (1e-12 relative: the same draws);
//   - the similarities against testdata/roadsanity/sanity.safetensors, recomputed from those
//     checkpoints by a float64 torch transcription of HF's model (autograd saliency and
//     input-x-gradient) with scipy's spearmanr and skimage's structural_similarity. Tolerance 1e-5:
//     our maps are float32 (relative error ~1e-6 of the map scale), which can swap near-tied
//     ranks and moves SSIM by about as much (measured worst: 2.7e-7, logged);
//   - the same similarities recomputed here from the checkpoints (core.Load of step-NN, the explain
//     methods, faithfulness.Compare) equal sanity.json exactly: the checkpoints are what was scored;
//   - existing outputs are refused without --force.
func TestSanityCommand(t *testing.T) {
	out, ckpt := filepath.Join(t.TempDir(), "out"), filepath.Join(t.TempDir(), "ckpt")
	args := []string{"sanity", "--model", "../../testdata/tiny", "--image", "../../testdata/tiny/chelsea.png",
		"--methods", "saliency,input-x-gradient", "--seed", "7", "--save-randomized", ckpt, "--out", out}
	if _, stderr, code := runCapture(args); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	raw, err := os.ReadFile(filepath.Join(out, "sanity.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep sanityJSON
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	groups := []string{"decoder", "self_attends.1", "self_attends.0", "cross_attention", "input"}
	if !slices.Equal(rep.Groups, groups) || len(rep.Steps) != 6 || rep.Target != 1 {
		t.Fatalf("groups %v, %d steps, target %d", rep.Groups, len(rep.Steps), rep.Target)
	}
	if rep.RandomLogit.Class == rep.Target || rep.RandomLogit.Class < 0 || rep.RandomLogit.Class >= 5 {
		t.Errorf("random logit class %d", rep.RandomLogit.Class)
	}
	if !strings.Contains(string(raw), `"randomized": []`) {
		t.Error("step 0's randomized is not an empty list")
	}
	for k, st := range rep.Steps {
		if !slices.Equal(st.Randomized, groups[:k]) {
			t.Errorf("step %d randomized %v", k, st.Randomized)
		}
	}
	for _, name := range []string{"saliency", "input-x-gradient"} {
		s := rep.Steps[0].Methods[name]
		for _, v := range []*float64{s.SpearmanAbs, s.Spearman, s.SSIM} {
			if v == nil || *v != 1 {
				t.Errorf("step 0 %s: %v, want 1", name, v)
			}
		}
	}
	for _, f := range []string{"sanity.md", "cascade.png", "maps.png"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}

	ref, meta := readF64Tensors(t, "../../testdata/roadsanity/sanity.safetensors")
	if meta["target"] != "1" || meta["seed"] != "7" {
		t.Fatalf("reference metadata %v", meta)
	}
	worst := 0.0
	prev := paramValues(t, "../../testdata/tiny")
	prefixes := [][]string{{"perceiver.decoder."}, {"perceiver.encoder.self_attends.1."}, {"perceiver.encoder.self_attends.0."},
		{"perceiver.encoder.cross_attention."}, {"perceiver.embeddings.", "perceiver.input_preprocessor."}}
	for k := 1; k <= len(groups); k++ {
		dir := filepath.Join(ckpt, fmt.Sprintf("step-%02d", k))
		// Checkpoint k differs from checkpoint k−1 (the original for k = 1) in every tensor of
		// group k and in nothing else.
		now := paramValues(t, dir)
		for name, v := range now {
			own := slices.ContainsFunc(prefixes[k-1], func(p string) bool { return strings.HasPrefix(name, p) })
			if same := slices.Equal(v, prev[name]); same == own {
				t.Errorf("step %d (%s): %s changed = %v", k, groups[k-1], name, !same)
			}
		}
		if len(now) != len(prev) {
			t.Errorf("step %d: %d tensors, before %d", k, len(now), len(prev))
		}
		prev = now
		m, err := core.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		var sum, sq float64
		for _, p := range m.Weights.Params() {
			for _, v := range p.Param.Data {
				sum += float64(v)
				sq += float64(v) * float64(v)
			}
		}
		fp := ref[fmt.Sprintf("fingerprint.%02d", k)]
		if math.Abs(sum-fp[0]) > 1e-12*math.Abs(fp[0])+1e-12 || math.Abs(sq-fp[1]) > 1e-12*fp[1] {
			t.Fatalf("step %d: checkpoint fingerprint %.15g %.15g, reference %.15g %.15g: other draws", k, sum, sq, fp[0], fp[1])
		}
		img, err := m.Preprocessor.LoadImage("../../testdata/tiny/chelsea.png", preprocess.Options{})
		if err != nil {
			t.Fatal(err)
		}
		mk, err := computeExplanations(explain.Input{Model: m, Pixels: img.Pixels, H: img.H, W: img.W, Target: rep.Target}, explain.DefaultOptions(), []string{"saliency", "input-x-gradient"})
		m.Close()
		if err != nil {
			t.Fatal(err)
		}
		orig := originalMaps(t)
		for i, mp := range mk {
			got := rep.Steps[k].Methods[mp.Method]
			again, err := faithfulness.Compare(orig[i].Values, mp.Values, mp.Grid.Rows, mp.Grid.Cols)
			if err != nil {
				t.Fatal(err)
			}
			want := ref[fmt.Sprintf("sim.%02d.%s", k, mp.Method)]
			for j, v := range []*float64{got.SpearmanAbs, got.Spearman, got.SSIM} {
				w := []*float64{again.SpearmanAbs, again.Spearman, again.SSIM}[j]
				if (v == nil) != (w == nil) || (v != nil && *v != *w) {
					t.Errorf("step %d %s similarity %d: sanity.json %v, recomputed from the checkpoint %v", k, mp.Method, j, v, w)
				}
				if v == nil || math.IsNaN(want[j]) {
					if (v == nil) != math.IsNaN(want[j]) {
						t.Errorf("step %d %s similarity %d: %v, reference %g", k, mp.Method, j, v, want[j])
					}
					continue
				}
				worst = max(worst, math.Abs(*v-want[j]))
				if math.Abs(*v-want[j]) > 1e-5 {
					t.Errorf("step %d %s similarity %d: %.8f, reference %.8f", k, mp.Method, j, *v, want[j])
				}
			}
		}
	}
	t.Logf("worst difference from the float64 references: %.3g", worst)

	if _, stderr, code := runCapture(args); code == 0 || !strings.Contains(stderr, "--force") {
		t.Errorf("rerun over existing outputs: exit %d, %s", code, stderr)
	}
	if _, stderr, code := runCapture(append(args, "--force")); code != 0 {
		t.Errorf("rerun with --force: exit %d, %s", code, stderr)
	}
	// Over a data set (the first 3 items: two photos and the broken file, skipped and counted):
	// means with standard errors, a target and a random-logit class per image.
	multi := filepath.Join(t.TempDir(), "multi")
	if _, stderr, code := runCapture([]string{"sanity", "--model", "../../testdata/tiny", "--data", imageFolder(t), "--limit", "3",
		"--methods", "saliency,mean", "--out", multi}); code != 0 {
		t.Fatalf("--data: exit %d: %s", code, stderr)
	}
	raw, err = os.ReadFile(filepath.Join(multi, "sanity.json"))
	if err != nil {
		t.Fatal(err)
	}
	var mrep struct {
		Target  int   `json:"target"`
		Targets []int `json:"targets"`
		Images  int   `json:"images"`
		Skipped int   `json:"skipped"`
		Steps   []struct {
			SE map[string]faithfulness.Similarity `json:"se"`
		} `json:"steps"`
		RandomLogit struct {
			Classes []int `json:"classes"`
		} `json:"random_logit"`
	}
	if err := json.Unmarshal(raw, &mrep); err != nil {
		t.Fatal(err)
	}
	if mrep.Images != 2 || mrep.Skipped != 1 || len(mrep.Targets) != 2 || mrep.Target != -1 || len(mrep.RandomLogit.Classes) != 2 || mrep.Steps[5].SE["saliency"].SpearmanAbs == nil {
		t.Errorf("--data sanity.json: %s", raw)
	}

	flow := []string{"sanity", "--model", "../../testdata/tiny-flow", "--image", "../../testdata/tiny/chelsea.png", "--methods", "mean", "--out", t.TempDir()}
	if _, stderr, code := runCapture(flow); code == 0 || strings.Count(strings.TrimSpace(stderr), "\n") > 0 || !strings.Contains(stderr, "classifier") {
		t.Errorf("flow model: exit %d, want one line of error: %s", code, stderr)
	}
}

// paramValues reads every parameter of a model folder.
func paramValues(t *testing.T, dir string) map[string][]float32 {
	t.Helper()
	m, err := core.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	out := map[string][]float32{}
	for _, p := range m.Weights.Params() {
		out[p.Name] = append([]float32(nil), p.Param.Data...)
	}
	return out
}

// originalMaps are the tiny fixture's saliency and input-x-gradient maps for its prediction.
func originalMaps(t *testing.T) []explain.Map {
	t.Helper()
	m, err := core.Load("../../testdata/tiny")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	img, err := m.Preprocessor.LoadImage("../../testdata/tiny/chelsea.png", preprocess.Options{})
	if err != nil {
		t.Fatal(err)
	}
	maps, err := computeExplanations(explain.Input{Model: m, Pixels: img.Pixels, H: img.H, W: img.W, Target: 1}, explain.DefaultOptions(), []string{"saliency", "input-x-gradient"})
	if err != nil {
		t.Fatal(err)
	}
	return maps
}

package faithfulness

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/internal/fixtures"
)

// TestSimilarityMatchesScipySkimage compares Compare with scipy.stats.spearmanr and
// skimage.metrics.structural_similarity(data_range=1) (0.19.3) on the pairs of
// testdata/roadsanity/similarity.safetensors (tools/roadsanity/make_references.py): random maps,
// maps with many ties, correlated maps, a constant map (Spearman null), an all-zero map, and a
// 5×9 pair (SSIM null: below 7×7). Tolerance 1e-12 absolute: the same float64 formulas, summed in
// another order.
func TestSimilarityMatchesScipySkimage(t *testing.T) {
	ref := readF64(t, "similarity.safetensors")
	for _, name := range []string{"random", "ties", "related", "constant", "zero", "small"} {
		a, b := ref.Tensors["a."+name], ref.Tensors["b."+name]
		shape := ref.Shapes["a."+name]
		got, err := Compare(toF32(a), toF32(b), shape[0], shape[1])
		if err != nil {
			t.Fatal(err)
		}
		want := ref.Tensors["sim."+name]
		for i, v := range []*float64{got.SpearmanAbs, got.Spearman, got.SSIM} {
			switch {
			case math.IsNaN(want[i]) != (v == nil):
				t.Errorf("%s: similarity %d is %v, reference %g (NaN: null)", name, i, v, want[i])
			case v != nil && math.Abs(*v-want[i]) > 1e-12:
				t.Errorf("%s: similarity %d is %.15g, reference %.15g", name, i, *v, want[i])
			}
		}
	}
}

// TestRanksAndPearsonByHand: ties share their mean rank; perfectly monotone maps correlate 1.
func TestRanksAndPearsonByHand(t *testing.T) {
	if got := Ranks([]float64{3, 1, 3, 2, 3}); !slices.Equal(got, []float64{4, 1, 4, 2, 4}) {
		t.Errorf("Ranks = %v, want [4 1 4 2 4]", got)
	}
	if got := Spearman([]float64{1, 2, 3, 4}, []float64{10, 20, 30, 1000}); got != 1 {
		t.Errorf("Spearman of monotone values = %g", got)
	}
	if got := Spearman([]float64{1, 2, 3}, []float64{3, 2, 1}); got != -1 {
		t.Errorf("Spearman of reversed values = %g", got)
	}
	// SSIM of a map with itself is exactly 1.
	v := make([]float64, 81)
	for i := range v {
		v[i] = float64(i%7) / 6
	}
	if got := SSIM(v, v, 9, 9); got != 1 {
		t.Errorf("SSIM(v, v) = %.17g", got)
	}
}

// TestCascadeChangesOnlyItsGroup randomises each fixture classifier step by step and checks after
// every step: the tensors of the step's group are re-initialised by Hugging Face's rules (biases and
// running means 0, norm weights and running variances 1, the rest drawn with standard deviation
// initializer_range: sample σ within 25 % for tensors of 100 values or more) and changed; every
// other tensor is bit-identical to the previous step's; the groups are named and ordered as issue
// 25 says and cover every parameter once.
func TestCascadeChangesOnlyItsGroup(t *testing.T) {
	for _, kind := range fixtures.Kinds {
		t.Run(kind, func(t *testing.T) {
			m, _ := fixtures.Load(t, kind)
			c, err := NewCascade(m, 3)
			if err != nil {
				t.Fatal(err)
			}
			s := m.Config.NumSelfAttendsPerBlock
			var names []string
			for _, g := range c.Groups {
				names = append(names, g.Name)
			}
			want := []string{"decoder"}
			for i := s - 1; i >= 0; i-- {
				want = append(want, "self_attends."+string(rune('0'+i)))
			}
			want = append(want, "cross_attention", "input")
			if !slices.Equal(names, want) {
				t.Fatalf("groups %v, want %v", names, want)
			}
			snapshot := func() map[string][]float32 {
				out := map[string][]float32{}
				for _, np := range m.Weights.Params() {
					out[np.Name] = append([]float32(nil), np.Param.Data...)
				}
				return out
			}
			seen := map[string]int{}
			for _, g := range c.Groups {
				for _, p := range g.Params {
					seen[p]++
				}
			}
			for _, np := range m.Weights.Params() {
				if seen[np.Name] != 1 {
					t.Errorf("%s is in %d groups", np.Name, seen[np.Name])
				}
			}
			prev := snapshot()
			for k, g := range c.Groups {
				if got := c.Next(); got != g.Name {
					t.Fatalf("step %d randomised %s, want %s", k+1, got, g.Name)
				}
				now := snapshot()
				in := map[string]bool{}
				for _, p := range g.Params {
					in[p] = true
				}
				for name, vals := range now {
					if !in[name] {
						if !slices.Equal(vals, prev[name]) {
							t.Errorf("step %d (%s) changed %s, outside its group", k+1, g.Name, name)
						}
						continue
					}
					checkReinit(t, name, vals, prev[name], m.Config.InitializerRange)
				}
				prev = now
			}
			if kind == "conv" && !slices.ContainsFunc(c.Groups[len(c.Groups)-1].Params, func(p string) bool { return strings.HasSuffix(p, "running_var") }) {
				t.Error("the conv stage's BatchNorm is not in the input group")
			}
		})
	}
}

func checkReinit(t *testing.T, name string, vals, before []float32, std float64) {
	t.Helper()
	constant := func(v float32) {
		for _, x := range vals {
			if x != v {
				t.Fatalf("%s re-initialised to %g, want all %g", name, x, v)
			}
		}
	}
	switch {
	case strings.HasSuffix(name, ".bias"), strings.HasSuffix(name, ".running_mean"):
		constant(0)
	case strings.HasSuffix(name, ".running_var"):
		constant(1)
	case strings.HasSuffix(name, ".weight") && !strings.Contains(name, "dense") && !strings.Contains(name, "query") &&
		!strings.Contains(name, "key") && !strings.Contains(name, "value") && !strings.Contains(name, "conv") &&
		!strings.Contains(name, "final_layer") && !strings.Contains(name, "projection"):
		constant(1) // LayerNorm and BatchNorm
	default:
		var ss float64
		for _, x := range vals {
			ss += float64(x) * float64(x)
		}
		sigma := math.Sqrt(ss / float64(len(vals)))
		if len(vals) >= 100 && (sigma < 0.75*std || sigma > 1.25*std) {
			t.Errorf("%s: %d values with σ %.4g, want ≈ %g", name, len(vals), sigma, std)
		}
	}
	if slices.Equal(vals, before) {
		t.Errorf("%s did not change", name)
	}
}

// TestSanityRefusesFlow: the optical-flow model has no class to explain.
func TestSanityRefusesFlow(t *testing.T) {
	m, err := core.Load("../testdata/tiny-flow")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := NewCascade(m, 1); err == nil || !strings.Contains(err.Error(), "classifier") {
		t.Errorf("NewCascade on the flow model: %v", err)
	}
}

// TestRandomLogitClass: never the target, every other class reachable, reproducible.
func TestRandomLogitClass(t *testing.T) {
	hit := map[int]bool{}
	for seed := range uint64(200) {
		c := RandomLogitClass(5, 2, seed)
		if c == 2 || c < 0 || c >= 5 || c != RandomLogitClass(5, 2, seed) {
			t.Fatalf("seed %d: class %d", seed, c)
		}
		hit[c] = true
	}
	if len(hit) != 4 {
		t.Errorf("classes drawn %v, want all of 0, 1, 3, 4", hit)
	}
}

// TestMeanSimilarity by hand: values 0.2 and 0.4 → mean 0.3, sd 0.1414, se 0.1; a measure null for
// one image is averaged over the other; null for all stays null.
func TestMeanSimilarity(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	m, se := MeanSimilarity([]Similarity{{SpearmanAbs: f(0.2), Spearman: f(0.5)}, {SpearmanAbs: f(0.4)}})
	if math.Abs(*m.SpearmanAbs-0.3) > 1e-15 || math.Abs(*se.SpearmanAbs-0.1) > 1e-15 {
		t.Errorf("mean %g se %g, want 0.3, 0.1", *m.SpearmanAbs, *se.SpearmanAbs)
	}
	if *m.Spearman != 0.5 || *se.Spearman != 0 || m.SSIM != nil || se.SSIM != nil {
		t.Errorf("spearman %v ± %v, ssim %v ± %v", m.Spearman, se.Spearman, m.SSIM, se.SSIM)
	}
}

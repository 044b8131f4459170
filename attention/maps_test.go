package attention_test

import (
	"math"
	"slices"
	"testing"

	"github.com/perceiverkit/perceiver/attention"
	"github.com/perceiverkit/perceiver/core/weights"
)

// Reference tensors: testdata/tiny/expected.safetensors, a copy of the shared fixture written by
// Hugging Face's PerceiverForImageClassificationFourier (PyTorch 1.13, float32) on chelsea.png
// with a tiny random-weight config: 8 latents, a 12×16 input grid (192 positions), 4 self-attention
// applications of 4 heads. Every expected map below is recomputed in this file in float64 from
// those tensors, by the formulas in maps.go, with loops in a different order from the package's.

const (
	mapsLatents = 8
	mapsPixels  = 12 * 16
	mapsHeads   = 4
	mapsApps    = 4
)

type mapsFixture struct {
	cross   []float32   // [L, N]
	self    [][]float32 // per application, [heads, L, L]
	decoder []float32   // [L]
}

func loadMapsFixture(t testing.TB) mapsFixture {
	t.Helper()
	file, err := weights.OpenSafetensors("../testdata/tiny/expected.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	get := func(name string, shape ...int) []float32 {
		tv, err := file.Get(name, shape...)
		if err != nil {
			t.Fatal(err)
		}
		return append([]float32(nil), tv.Data...)
	}
	f := mapsFixture{
		cross:   get("cross_attentions.encoder", 1, 1, mapsLatents, mapsPixels),
		decoder: get("cross_attentions.decoder", 1, 1, 1, mapsLatents),
	}
	for j := range mapsApps {
		f.self = append(f.self, get("attentions."+string(rune('0'+j)), 1, mapsHeads, mapsLatents, mapsLatents))
	}
	return f
}

// assertMapClose fails unless |got-want| ≤ tol·max|want| elementwise.
func assertMapClose(t *testing.T, what string, got []float32, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: len %d, want %d", what, len(got), len(want))
	}
	var scale, worst float64
	for _, w := range want {
		scale = max(scale, math.Abs(w))
	}
	at := -1
	for i := range want {
		if d := math.Abs(float64(got[i]) - want[i]); d > worst || math.IsNaN(d) {
			worst, at = d, i
		}
	}
	if at >= 0 && !(worst <= tol*scale) {
		t.Fatalf("%s: |got-want| = %.3g at %d (got %v, want %v) > %g·%.3g", what, worst, at, got[at], want[at], tol, scale)
	}
}

// The tolerances: maps sum in float64 and round once to float32, so they must agree with a
// float64 reference to float32 rounding (1e-6 relative leaves a little margin); the rollout
// product runs in float32 over 4 applications, for which 1e-5 is generous.
const (
	mapTol     = 1e-6
	rolloutTol = 1e-5
)

func TestLatentAndMeanMapsMatchFixture(t *testing.T) {
	f := loadMapsFixture(t)
	got := make([]float32, mapsPixels)
	for l := range mapsLatents {
		attention.LatentMap(got, f.cross, l, mapsPixels)
		want := make([]float64, mapsPixels)
		for p := range want {
			want[p] = float64(f.cross[l*mapsPixels+p])
		}
		assertMapClose(t, "latent map", got, want, 0)
	}

	attention.MeanMap(got, f.cross, mapsLatents, mapsPixels)
	want := make([]float64, mapsPixels)
	var total float64
	for p := range want {
		for l := range mapsLatents {
			want[p] += float64(f.cross[l*mapsPixels+p])
		}
		want[p] /= mapsLatents
		total += float64(got[p])
	}
	assertMapClose(t, "mean map", got, want, mapTol)
	// Each cross-attention row is a softmax, so the mean map is a distribution too.
	if math.Abs(total-1) > 1e-5 {
		t.Errorf("mean map sums to %v, want 1", total)
	}
}

func TestDecoderMapMatchesFixture(t *testing.T) {
	f := loadMapsFixture(t)
	got := make([]float32, mapsPixels)
	attention.WeightedMap(got, f.decoder, f.cross, mapsLatents, mapsPixels)
	want := make([]float64, mapsPixels)
	for p := range want {
		for l := range mapsLatents {
			want[p] += float64(f.decoder[l]) * float64(f.cross[l*mapsPixels+p])
		}
	}
	assertMapClose(t, "decoder map", got, want, mapTol)
}

// rolloutReference computes R = Â_J·…·Â_1 in float64 straight from the definition.
func rolloutReference(apps [][]float32, heads, l int) [][]float64 {
	r := make([][]float64, l)
	for i := range r {
		r[i] = make([]float64, l)
		r[i][i] = 1
	}
	for _, a := range apps {
		hat := make([][]float64, l)
		for i := range hat {
			hat[i] = make([]float64, l)
			var sum float64
			for k := range l {
				var m float64
				for h := range heads {
					m += float64(a[(h*l+i)*l+k])
				}
				m /= float64(heads)
				hat[i][k] = 0.5 * m
				if i == k {
					hat[i][k] += 0.5
				}
				sum += hat[i][k]
			}
			for k := range l {
				hat[i][k] /= sum
			}
		}
		next := make([][]float64, l)
		for i := range next {
			next[i] = make([]float64, l)
			for k := range l {
				for m := range l {
					next[i][k] += hat[i][m] * r[m][k]
				}
			}
		}
		r = next
	}
	return r
}

func TestRolloutMapMatchesFixture(t *testing.T) {
	f := loadMapsFixture(t)
	ro := attention.NewRollout(1, mapsLatents)
	for _, a := range f.self {
		ro.Add(a, mapsHeads)
	}
	if ro.Applications() != mapsApps {
		t.Fatalf("Applications() = %d, want %d", ro.Applications(), mapsApps)
	}
	ref := rolloutReference(f.self, mapsHeads, mapsLatents)
	assertMapClose(t, "rollout matrix", ro.Matrix(0), slices.Concat(ref...), rolloutTol)

	weights := make([]float32, mapsLatents)
	ro.LatentWeights(weights, 0, f.decoder)
	wantW := make([]float64, mapsLatents)
	for k := range wantW {
		for i := range mapsLatents {
			wantW[k] += float64(f.decoder[i]) * ref[i][k]
		}
	}
	assertMapClose(t, "rollout latent weights", weights, wantW, rolloutTol)

	got := make([]float32, mapsPixels)
	attention.WeightedMap(got, weights, f.cross, mapsLatents, mapsPixels)
	want := make([]float64, mapsPixels)
	var total float64
	for p := range want {
		for l := range mapsLatents {
			want[p] += wantW[l] * float64(f.cross[l*mapsPixels+p])
		}
		total += float64(got[p])
	}
	assertMapClose(t, "rollout map", got, want, rolloutTol)
	// R is row-stochastic and d sums to 1, so the rollout map is a distribution.
	if math.Abs(total-1) > 1e-5 {
		t.Errorf("rollout map sums to %v, want 1", total)
	}
}

// Hand-computed: A = [[.2 .8] [.6 .4]] gives Â = [[.6 .4] [.3 .7]] and
// Â² = [[.48 .52] [.39 .61]]. The second image of the batch has A = I, so its R stays I:
// it catches images leaking into each other.
func TestRolloutBatchByHand(t *testing.T) {
	ro := attention.NewRollout(2, 2)
	// Two heads per image whose mean is the A above (image 0) and I (image 1).
	probs := []float32{
		0.4, 0.6, 0.2, 0.8, // image 0, head 0
		0.0, 1.0, 1.0, 0.0, // image 0, head 1
		1, 0, 0, 1, // image 1, head 0
		1, 0, 0, 1, // image 1, head 1
	}
	ro.Add(probs, 2)
	ro.Add(probs, 2)
	assertMapClose(t, "image 0", ro.Matrix(0), []float64{0.48, 0.52, 0.39, 0.61}, 1e-6)
	assertMapClose(t, "image 1", ro.Matrix(1), []float64{1, 0, 0, 1}, 0)

	w := make([]float32, 2)
	ro.LatentWeights(w, 0, []float32{0.25, 0.75})
	// (.25·.48 + .75·.39, .25·.52 + .75·.61)
	assertMapClose(t, "weights", w, []float64{0.4125, 0.5875}, 1e-6)

	ro.Reset()
	if ro.Applications() != 0 {
		t.Errorf("Applications after Reset = %d", ro.Applications())
	}
	assertMapClose(t, "reset", ro.Matrix(0), []float64{1, 0, 0, 1}, 0)
}

func TestMeanHeads(t *testing.T) {
	f := loadMapsFixture(t)
	got := make([]float32, mapsLatents*mapsLatents)
	attention.MeanHeads(got, f.self[0], mapsHeads, mapsLatents, mapsLatents)
	want := make([]float64, len(got))
	for i := range want {
		for h := range mapsHeads {
			want[i] += float64(f.self[0][h*len(got)+i])
		}
		want[i] /= mapsHeads
	}
	assertMapClose(t, "mean heads", got, want, mapTol)
}

func TestTopLatents(t *testing.T) {
	f := loadMapsFixture(t)
	// Reference: repeated selection of the largest remaining weight.
	var want []int
	taken := make([]bool, mapsLatents)
	for range 3 {
		best := -1
		for l, v := range f.decoder {
			if !taken[l] && (best < 0 || v > f.decoder[best]) {
				best = l
			}
		}
		taken[best] = true
		want = append(want, best)
	}
	if got := attention.TopLatents(f.decoder, 3); !slices.Equal(got, want) {
		t.Errorf("TopLatents(decoder, 3) = %v, want %v (decoder %v)", got, want, f.decoder)
	}

	cases := []struct {
		weights []float32
		k       int
		want    []int
	}{
		{[]float32{0.1, 0.3, 0.3, 0.2}, 3, []int{1, 2, 3}}, // tie keeps index order
		{[]float32{0.5, float32(math.NaN()), 0.1}, 3, []int{0, 2, 1}},
		{[]float32{0.5, 0.5}, 5, []int{0, 1}},
		{[]float32{0.5, 0.5}, -1, []int{}},
	}
	for _, c := range cases {
		if got := attention.TopLatents(c.weights, c.k); !slices.Equal(got, c.want) {
			t.Errorf("TopLatents(%v, %d) = %v, want %v", c.weights, c.k, got, c.want)
		}
	}
}

func TestMapShapeErrors(t *testing.T) {
	expectPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if r := recover(); r == nil {
				t.Errorf("%s: no panic", name)
			} else if _, ok := r.(attention.ShapeError); !ok {
				t.Errorf("%s: recovered %v, want a ShapeError", name, r)
			}
		}()
		f()
	}
	dst := make([]float32, 4)
	expectPanic("weights too short", func() { attention.WeightedMap(dst, []float32{1}, make([]float32, 8), 2, 4) })
	expectPanic("cross too short", func() { attention.MeanMap(dst, make([]float32, 7), 2, 4) })
	expectPanic("latent out of range", func() { attention.LatentMap(dst, make([]float32, 8), 2, 4) })
	expectPanic("probs wrong size", func() { attention.NewRollout(1, 2).Add(make([]float32, 3), 1) })
	expectPanic("image out of range", func() { attention.NewRollout(1, 2).Matrix(1) })
}

func BenchmarkWeightedMap224(b *testing.B) {
	const l, n = 512, 224 * 224
	cross := make([]float32, l*n)
	for i := range cross {
		cross[i] = float32(i%97) / (97 * n)
	}
	w := make([]float32, l)
	for i := range w {
		w[i] = 1 / float32(l)
	}
	dst := make([]float32, n)
	b.SetBytes(int64(4 * l * n))
	for b.Loop() {
		attention.WeightedMap(dst, w, cross, l, n)
	}
}

func BenchmarkRolloutAdd512(b *testing.B) {
	const l, heads = 512, 8
	probs := make([]float32, heads*l*l)
	for i := range probs {
		probs[i] = 1 / float32(l)
	}
	ro := attention.NewRollout(1, l)
	ro.Add(probs, heads) // the first application is a copy; time the products
	for b.Loop() {
		ro.Add(probs, heads)
	}
}

package attention

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func randSlice(rng *rand.Rand, n int, scale float64) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64() * scale)
	}
	return s
}

// naive is the textbook attention in float64, one head at a time: the reference for the kernels.
func naive(q, k, v []float32, nq, nk, heads, dqk, dv int, scale float64) (ctx, probs []float64) {
	ctx = make([]float64, nq*heads*dv)
	probs = make([]float64, heads*nq*nk)
	for h := 0; h < heads; h++ {
		for i := 0; i < nq; i++ {
			row := probs[(h*nq+i)*nk : (h*nq+i+1)*nk]
			m := math.Inf(-1)
			for j := 0; j < nk; j++ {
				var s float64
				for c := 0; c < dqk; c++ {
					s += float64(q[i*heads*dqk+h*dqk+c]) * float64(k[j*heads*dqk+h*dqk+c])
				}
				row[j] = s * scale
				m = math.Max(m, row[j])
			}
			var sum float64
			for j := range row {
				row[j] = math.Exp(row[j] - m)
				sum += row[j]
			}
			for j := range row {
				row[j] /= sum
				for c := 0; c < dv; c++ {
					ctx[i*heads*dv+h*dv+c] += row[j] * float64(v[j*heads*dv+h*dv+c])
				}
			}
		}
	}
	return ctx, probs
}

func maxRel(got []float32, want []float64) float64 {
	var d, r float64
	for i := range want {
		d = math.Max(d, math.Abs(float64(got[i])-want[i]))
		r = math.Max(r, math.Abs(want[i]))
	}
	return d / r
}

// Shapes include one query, one key, odd widths and the Perceiver's own head layouts (scaled down).
var shapes = []struct{ nq, nk, heads, dqk, dv int }{
	{1, 1, 1, 1, 1}, {1, 7, 1, 5, 3}, {8, 8, 4, 8, 8}, {8, 192, 1, 29, 29}, {13, 37, 3, 7, 11}, {64, 300, 2, 16, 24},
}

// TestMultiHead compares MultiHead with the float64 reference; scores are drawn large (peaked
// softmax) so scaling or head-split mistakes show. Tolerance 1e-5 of the largest magnitude: float32
// products of up to 300 terms.
func TestMultiHead(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, s := range shapes {
		q := randSlice(rng, s.nq*s.heads*s.dqk, 1)
		k := randSlice(rng, s.nk*s.heads*s.dqk, 1)
		v := randSlice(rng, s.nk*s.heads*s.dv, 1)
		scale := 1 / math.Sqrt(float64(s.dqk)) * 3
		ctx := make([]float32, s.nq*s.heads*s.dv)
		probs := make([]float32, s.heads*s.nq*s.nk)
		MultiHead(ctx, probs, q, k, v, s.nq, s.nk, s.heads, s.dqk, s.dv, float32(scale))
		wantCtx, wantProbs := naive(q, k, v, s.nq, s.nk, s.heads, s.dqk, s.dv, scale)
		if e := maxRel(ctx, wantCtx); e > 1e-5 {
			t.Errorf("%+v: context relative error %.3g", s, e)
		}
		if e := maxRel(probs, wantProbs); e > 1e-5 {
			t.Errorf("%+v: probabilities relative error %.3g", s, e)
		}
	}
}

// TestOnlineMatchesMultiHead feeds keys in uneven chunks to the streaming accumulator, against the
// float64 reference at the same tolerance.
func TestOnlineMatchesMultiHead(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, s := range shapes {
		q := randSlice(rng, s.nq*s.heads*s.dqk, 1)
		k := randSlice(rng, s.nk*s.heads*s.dqk, 1)
		v := randSlice(rng, s.nk*s.heads*s.dv, 1)
		scale := 3 / math.Sqrt(float64(s.dqk))
		want, wantProbs := naive(q, k, v, s.nq, s.nk, s.heads, s.dqk, s.dv, scale)
		for _, chunk := range []int{1, 5, 64, s.nk} {
			o := NewOnline(s.nq, s.heads, s.dqk, s.dv, chunk, float32(scale))
			for j := 0; j < s.nk; j += chunk {
				n := min(chunk, s.nk-j)
				o.Add(q, k[j*s.heads*s.dqk:(j+n)*s.heads*s.dqk], v[j*s.heads*s.dv:(j+n)*s.heads*s.dv], n, nil, 0)
			}
			ctx := make([]float32, s.nq*s.heads*s.dv)
			o.Finish(ctx)
			if e := maxRel(ctx, want); e > 1e-5 {
				t.Errorf("%+v chunk %d: relative error %.3g", s, chunk, e)
			}
			// Again, keeping the scores: the same output bit for bit, and the exact map.
			o.Reset()
			scores := make([]float32, s.heads*s.nq*s.nk)
			for j := 0; j < s.nk; j += chunk {
				n := min(chunk, s.nk-j)
				o.Add(q, k[j*s.heads*s.dqk:(j+n)*s.heads*s.dqk], v[j*s.heads*s.dv:(j+n)*s.heads*s.dv], n, scores[j:], s.nk)
			}
			ctx2 := make([]float32, len(ctx))
			o.Finish(ctx2)
			o.Probabilities(scores, s.nk)
			if !slices.Equal(ctx, ctx2) {
				t.Errorf("%+v chunk %d: keeping scores changed the output", s, chunk)
			}
			if e := maxRel(scores, wantProbs); e > 1e-5 {
				t.Errorf("%+v chunk %d: map relative error %.3g", s, chunk, e)
			}
		}
	}
}

func TestSoftmaxRowsExtremes(t *testing.T) {
	x := []float32{1000, 0, -1000, float32(math.Inf(-1)), 5, 5, 5, 5}
	SoftmaxRows(x, 2, 4, 4)
	want := []float32{1, 0, 0, 0, 0.25, 0.25, 0.25, 0.25}
	for i := range x {
		if x[i] != want[i] {
			t.Fatalf("softmax = %v, want %v", x, want)
		}
	}
}

func TestShapePanics(t *testing.T) {
	defer func() {
		if _, ok := recover().(ShapeError); !ok {
			t.Fatal("want a ShapeError panic")
		}
	}()
	MultiHead(make([]float32, 1), make([]float32, 1), make([]float32, 4), make([]float32, 4), make([]float32, 4), 2, 2, 1, 2, 2, 1)
}

func ExampleMultiHead() {
	// Two queries attend over three keys with one head of width 2.
	q := []float32{10, 0, 0, 10}
	k := []float32{1, 0, 0, 1, 0, 0}
	v := []float32{1, 2, 3, 4, 5, 6}
	ctx := make([]float32, 2*2)
	probs := make([]float32, 2*3)
	MultiHead(ctx, probs, q, k, v, 2, 3, 1, 2, 2, 1)
	fmt.Printf("query 0 attends to key 0 with p=%.4f: context %.3f\n", probs[0], ctx[:2])
	// Output:
	// query 0 attends to key 0 with p=0.9999: context [1.000 2.000]
}

func BenchmarkSelfAttentionHeads(b *testing.B) {
	// One full-size self-attention: 8 heads of 128 over 512 latents.
	const L, heads, d = 512, 8, 128
	rng := rand.New(rand.NewPCG(1, 1))
	q, k, v := randSlice(rng, L*heads*d, 1), randSlice(rng, L*heads*d, 1), randSlice(rng, L*heads*d, 1)
	ctx, probs := make([]float32, L*heads*d), make([]float32, heads*L*L)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		MultiHead(ctx, probs, q, k, v, L, L, heads, d, d, 0.088)
	}
	flops := float64(heads) * 2 * 2 * L * L * d
	b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
}

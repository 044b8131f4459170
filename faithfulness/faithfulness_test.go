package faithfulness

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/internal/fixtures"
)

// bruteCurve computes one image's curve for one map and direction straight from the protocol in
// doc.go, sharing no code with Evaluate: a pixel is removed at step k when fewer than ⌊k·N/steps⌋
// pixels (floor taken on exact rationals) precede it, q preceding p when its value is larger
// (positive; smaller for negative) or equal with q < p; every perturbed image runs alone; the
// probability is exp(y_t)/Σ exp(y_i) and top-1 counts the classes that beat the target.
func bruteCurve(t *testing.T, m *core.Model, px []float32, h, w int, mp []float32, positive bool, steps int) (prob, top1 []float64) {
	n := h * w
	rank := make([]int, n)
	for p := range n {
		for q := range n {
			before := mp[q] > mp[p]
			if !positive {
				before = mp[q] < mp[p]
			}
			if before || (mp[q] == mp[p] && q < p) {
				rank[p]++
			}
		}
	}
	base, err := m.Forward(px, 1, h, w, core.Trace{})
	if err != nil {
		t.Fatal(err)
	}
	target := 0
	for c, v := range base.Logits {
		if v > base.Logits[target] {
			target = c
		}
	}
	for k := range steps {
		f := new(big.Rat).SetFrac64(int64(k), int64(steps))
		f.Mul(f, new(big.Rat).SetInt64(int64(n)))
		count := new(big.Int).Quo(f.Num(), f.Denom()).Int64() // floor: f ≥ 0
		img := append([]float32(nil), px...)
		for p := range n {
			if int64(rank[p]) < count {
				img[p], img[n+p], img[2*n+p] = 0, 0, 0
			}
		}
		out, err := m.Forward(img, 1, h, w, core.Trace{})
		if err != nil {
			t.Fatal(err)
		}
		var sum float64
		for _, v := range out.Logits {
			sum += math.Exp(float64(v))
		}
		prob = append(prob, math.Exp(float64(out.Logits[target]))/sum)
		beaten := 0
		for c, v := range out.Logits {
			if v > out.Logits[target] || (v == out.Logits[target] && c < target) {
				beaten++
			}
		}
		top1 = append(top1, map[bool]float64{true: 1, false: 0}[beaten == 0])
	}
	return prob, top1
}

// testMaps are maps with many ties (a few levels; a token map drawn on the pixels), a random one
// and a constant one (the ranking is then the pixel order itself).
func testMaps(m *core.Model, h, w int) [][]float32 {
	n := h * w
	levels := make([]float32, n)
	random := make([]float32, n)
	constant := make([]float32, n)
	rng := rand.New(rand.NewPCG(3, 4))
	for p := range n {
		levels[p] = float32((p*7)%5) - 2
		random[p] = rng.Float32()
		constant[p] = 0.5
	}
	maps := [][]float32{levels, random, constant}
	if g, err := m.Weights.Input.Grid(h, w); err == nil && !g.Pixel() {
		tok := make([]float32, g.Tokens())
		for i := range tok {
			tok[i] = float32(i % 3)
		}
		px := make([]float32, n)
		g.ToPixels(px, tok)
		maps = append(maps, px)
	}
	return maps
}

// TestEvaluateMatchesBruteForce holds Evaluate and Average to bruteCurve on the three fixtures,
// two images each (the photo and a dimmed copy), 7 steps, batches of 5. Probabilities: 1e-12
// relative (two float64 formulas of the same float32 logits; the batched logits equal single
// ones bit for bit); top-1 and fractions: exact; AUC: 1e-12.
func TestEvaluateMatchesBruteForce(t *testing.T) {
	const steps = 7
	for _, kind := range fixtures.Kinds {
		t.Run(kind, func(t *testing.T) {
			m, img := fixtures.Load(t, kind)
			dim := append([]float32(nil), img.Pixels...)
			for i := range dim {
				dim[i] = 0.6*dim[i] + 0.1
			}
			maps := testMaps(m, img.H, img.W)
			var per [][]Curves
			refProb := make([][2][]float64, len(maps))
			refTop := make([][2][]float64, len(maps))
			for _, px := range [][]float32{img.Pixels, dim} {
				base, err := m.Forward(px, 1, img.H, img.W, core.Trace{})
				if err != nil {
					t.Fatal(err)
				}
				got, err := Evaluate(m, Image{Pixels: px, H: img.H, W: img.W, Logits: base.Logits}, maps, Options{Steps: steps, Batch: 5})
				if err != nil {
					t.Fatal(err)
				}
				per = append(per, got)
				for i, mp := range maps {
					for d, positive := range []bool{true, false} {
						prob, top1 := bruteCurve(t, m, px, img.H, img.W, mp, positive, steps)
						c := got[i].Positive
						if !positive {
							c = got[i].Negative
						}
						for k := range steps {
							if c.Fractions[k] != float64(k)/steps {
								t.Fatalf("fraction %d = %g", k, c.Fractions[k])
							}
							if math.Abs(c.Prob[k]-prob[k]) > 1e-12*prob[k] || c.Top1[k] != top1[k] {
								t.Errorf("map %d positive=%v k=%d: prob %.15g top1 %g, brute force %.15g %g", i, positive, k, c.Prob[k], c.Top1[k], prob[k], top1[k])
							}
						}
						if refProb[i][d] == nil {
							refProb[i][d], refTop[i][d] = make([]float64, steps), make([]float64, steps)
						}
						for k := range steps {
							refProb[i][d][k] += prob[k] / 2
							refTop[i][d][k] += top1[k] / 2
						}
					}
				}
			}
			for i := range maps {
				avg, err := Average([]Curves{per[0][i], per[1][i]})
				if err != nil {
					t.Fatal(err)
				}
				for d, c := range []Curve{avg.Positive, avg.Negative} {
					var aucP, aucT float64
					for k := 0; k+1 < steps; k++ {
						aucP += (refProb[i][d][k] + refProb[i][d][k+1]) / (2 * steps)
						aucT += (refTop[i][d][k] + refTop[i][d][k+1]) / (2 * steps)
					}
					if math.Abs(c.AUCProb-aucP) > 1e-12 || math.Abs(c.AUCTop1-aucT) > 1e-12 {
						t.Errorf("map %d direction %d: AUC prob %.15g top1 %.15g, brute force %.15g %.15g", i, d, c.AUCProb, c.AUCTop1, aucP, aucT)
					}
				}
			}
		})
	}
}

func TestOrderTiesAndNaN(t *testing.T) {
	m := []float32{1, 3, 3, 0, 1}
	for _, c := range []struct {
		positive bool
		want     []int
	}{{true, []int{1, 2, 0, 4, 3}}, {false, []int{3, 0, 4, 1, 2}}} {
		got, err := Order(m, c.positive)
		if err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Fatalf("Order(positive=%v) = %v, want %v", c.positive, got, c.want)
			}
		}
	}
	if _, err := Order([]float32{1, float32(math.NaN())}, true); err == nil {
		t.Error("a NaN map was ranked")
	}
}

func TestRemovedIsExactFloor(t *testing.T) {
	// ⌊k/steps·n⌋ where float64 arithmetic would round across an integer: 0.7·10 = 7.000000000000001
	// but (1 − 0.3)·10 = 6.999999999999999; k·n div steps is exact.
	for _, c := range []struct{ n, k, steps, want int }{{10, 7, 10, 7}, {10, 3, 10, 3}, {50176, 9, 10, 45158}, {3, 1, 2, 1}} {
		if got := Removed(c.n, c.k, c.steps); got != c.want {
			t.Errorf("Removed(%d, %d, %d) = %d, want %d", c.n, c.k, c.steps, got, c.want)
		}
	}
}

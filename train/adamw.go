package train

import (
	"fmt"
	"math"
)

// AdamW is torch.optim.AdamW (amsgrad off) over a fixed list of parameters: decoupled weight
// decay on the old values, then the bias-corrected Adam step. M and V hold the first and second
// moments, one slice per parameter, float32 as PyTorch keeps them.
type AdamW struct {
	Beta1, Beta2, Eps, WeightDecay float64
	M, V                           [][]float32
	T                              int // updates taken so far (t of the last update)
}

// NewAdamW makes the optimiser for parameters of the given sizes with PyTorch's β and ε.
func NewAdamW(sizes []int, weightDecay float64) *AdamW {
	a := &AdamW{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: weightDecay}
	for _, n := range sizes {
		a.M = append(a.M, make([]float32, n))
		a.V = append(a.V, make([]float32, n))
	}
	return a
}

// SizeError reports parameters and gradients that do not match the optimiser's state, a
// programmer error.
type SizeError string

func (e SizeError) Error() string { return "train: " + string(e) }

// Step takes one update with learning rate lr: params[i] -= … given grads[i] (each the length of
// its moments). t advances even when lr is 0, as PyTorch's step counter does.
func (a *AdamW) Step(params, grads [][]float32, lr float64) {
	if len(params) != len(a.M) || len(grads) != len(a.M) {
		panic(SizeError(fmt.Sprintf("AdamW.Step: %d parameters and %d gradients for %d moments", len(params), len(grads), len(a.M))))
	}
	a.T++
	b1, b2 := a.Beta1, a.Beta2
	decay := 1 - lr*a.WeightDecay
	step := lr / (1 - math.Pow(b1, float64(a.T)))
	c2 := math.Sqrt(1 - math.Pow(b2, float64(a.T)))
	for i, p := range params {
		g, m, v := grads[i], a.M[i], a.V[i]
		if len(p) != len(m) || len(g) != len(m) {
			panic(SizeError(fmt.Sprintf("AdamW.Step: parameter %d has %d values, gradient %d, moments %d", i, len(p), len(g), len(m))))
		}
		for j := range p {
			gj := float64(g[j])
			mj := float32(b1*float64(m[j]) + (1-b1)*gj)
			vj := float32(b2*float64(v[j]) + (1-b2)*gj*gj)
			m[j], v[j] = mj, vj
			theta := float64(p[j]) * decay
			p[j] = float32(theta - step*float64(mj)/(math.Sqrt(float64(vj))/c2+a.Eps))
		}
	}
}

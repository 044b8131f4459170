package ablation

import (
	"fmt"

	"github.com/perceiverkit/perceiver/core"
)

// Options say what replaces an ablated latent and how many ablations share a pass.
type Options struct {
	// Replacement [L, D]: latent ℓ is replaced by row ℓ (its mean over a data set, from Mean).
	// nil replaces it by zeros.
	Replacement []float32
	// Batch is the number of ablated copies per pass of the latent stack (default 8).
	Batch int
	// Logits are the unablated logits, when the caller already ran hidden through
	// core.Model.ForwardLatents; nil: Latents runs that pass itself.
	Logits []float32
}

// Result holds one image's ablations.
type Result struct {
	Target  int       // the class whose logit is measured
	Logit   float64   // y(x), the target logit without ablation
	Latents []int     // the latents ablated, in the order asked for
	Delta   []float64 // Δ per latent, same order: y(x) − y with that latent replaced
	Logits  []float32 // the unablated logits, [labels]
}

// Latents ablates each latent of latents in turn from hidden, hidden state 0 of one image
// [L, D] (core.Model.Encode's HiddenStates[0]), and measures the target class's logit. A negative
// target means the unablated prediction (the largest logit, ties to the lower class index).
func Latents(m *core.Model, hidden []float32, target int, latents []int, opt Options) (*Result, error) {
	L, D := m.Config.NumLatents, m.Config.DLatents
	if len(hidden) != L*D {
		return nil, fmt.Errorf("ablation: hidden state has %d values, want %d latents × %d", len(hidden), L, D)
	}
	if opt.Replacement != nil && len(opt.Replacement) != L*D {
		return nil, fmt.Errorf("ablation: replacement has %d values, want %d latents × %d", len(opt.Replacement), L, D)
	}
	for _, l := range latents {
		if l < 0 || l >= L {
			return nil, fmt.Errorf("ablation: latent %d out of range (the model has latents 0-%d)", l, L-1)
		}
	}
	batch := opt.Batch
	if batch < 1 {
		batch = 8
	}
	logits := opt.Logits
	if logits == nil {
		base, err := m.ForwardLatents(hidden, 1, core.Trace{})
		if err != nil {
			return nil, err
		}
		logits = base.Logits
	}
	labels := len(logits)
	if target < 0 {
		target = core.Argmax(logits)
	}
	if target >= labels {
		return nil, fmt.Errorf("ablation: target %d out of range: the model has %d classes (0…%d)", target, labels, labels-1)
	}
	r := &Result{Target: target, Logit: float64(logits[target]), Latents: append([]int(nil), latents...),
		Delta: make([]float64, len(latents)), Logits: logits}
	copies := make([]float32, min(batch, max(1, len(latents)))*L*D)
	for i0 := 0; i0 < len(latents); i0 += batch {
		chunk := latents[i0:min(i0+batch, len(latents))]
		for b, l := range chunk {
			c := copies[b*L*D : (b+1)*L*D]
			copy(c, hidden)
			row := c[l*D : (l+1)*D]
			if opt.Replacement == nil {
				clear(row)
			} else {
				copy(row, opt.Replacement[l*D:(l+1)*D])
			}
		}
		out, err := m.ForwardLatents(copies[:len(chunk)*L*D], len(chunk), core.Trace{})
		if err != nil {
			return nil, err
		}
		for b := range chunk {
			r.Delta[i0+b] = r.Logit - float64(out.Logits[b*labels+target])
		}
	}
	return r, nil
}

// Mean accumulates hidden state 0 over a data set: each latent's mean vector, the replacement
// of mode mean. The zero value is ready to use.
type Mean struct {
	sum   []float64
	count int
}

// Add adds the hidden states hidden [B, L·D] of a batch (core.Model.Encode's HiddenStates[0]),
// with size = L·D.
func (a *Mean) Add(hidden []float32, size int) error {
	if size < 1 || len(hidden)%size != 0 {
		return fmt.Errorf("ablation: %d hidden values are not whole images of %d", len(hidden), size)
	}
	if a.sum == nil {
		a.sum = make([]float64, size)
	} else if len(a.sum) != size {
		return fmt.Errorf("ablation: images of %d hidden values after images of %d", size, len(a.sum))
	}
	for b := 0; b < len(hidden); b += size {
		for i, v := range hidden[b : b+size] {
			a.sum[i] += float64(v)
		}
		a.count++
	}
	return nil
}

// Count is the number of images added.
func (a *Mean) Count() int { return a.count }

// Value returns the mean [L, D], or an error when nothing was added.
func (a *Mean) Value() ([]float32, error) {
	if a.count == 0 {
		return nil, fmt.Errorf("ablation: mean over no images")
	}
	out := make([]float32, len(a.sum))
	for i, s := range a.sum {
		out[i] = float32(s / float64(a.count))
	}
	return out, nil
}

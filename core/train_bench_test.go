package core

import (
	"math"
	"strconv"
	"testing"

	"github.com/perceiverkit/perceiver/core/preprocess"
	"github.com/perceiverkit/perceiver/internal/par"
)

// BenchmarkTrainStep times one training step as `probe train` takes it: the forward pass, the
// mean cross-entropy of the batch, the backward pass to every parameter (GradTrace.Params =
// AllParams, or DecoderParams for --train decoder) and an AdamW update of the trained parameters
// (written here as a plain loop, torch.optim.AdamW's formula, since train/ lives elsewhere),
// followed by Model.WeightsChanged. Its PyTorch counterpart is
// tools/torchbench/perceiver_train_step.py (same architecture, batch and update). Sizes:
// "full" is the released Fourier model at 224² (random weights), "demo" probe demo's 28² model.
func BenchmarkTrainStep(b *testing.B) {
	for _, c := range []struct {
		name   string
		model  func() (*Model, error)
		batch  int
		params ParamSet
	}{
		{"full/batch2", fullSizeRandom, 2, AllParams},
		{"full-decoder/batch2", fullSizeRandom, 2, DecoderParams},
		{"demo/batch32", demoSizeRandom, 32, AllParams},
	} {
		b.Run(c.name, func(b *testing.B) {
			m, err := c.model()
			if err != nil {
				b.Fatal(err)
			}
			h, w := m.Preprocessor.Size.Height, m.Preprocessor.Size.Width
			px := make([]float32, c.batch*3*h*w)
			for i := range px {
				px[i] = float32(math.Sin(float64(i)))
			}
			labels := make([]int, c.batch)
			for i := range labels {
				labels[i] = i % m.Config.NumLabels()
			}
			opt := newBenchAdamW(m, c.params)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				_, g, err := m.ForwardBackward(px, c.batch, h, w, Trace{}, GradTrace{Labels: labels, Params: c.params})
				if err != nil {
					b.Fatal(err)
				}
				opt.step(g, 1e-5, 0.01)
				m.WeightsChanged()
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/step")
		})
	}
}

func fullSizeRandom() (*Model, error) {
	return NewRandom(FullSizeConfig(), preprocess.DefaultConfig(), 1)
}

// demoSizeRandom is cmd/probe's demoModel: a Fourier Perceiver for 28×28 images, 32 latents × 64,
// 2 blocks × 2 layers, 4 heads, 10 classes.
func demoSizeRandom() (*Model, error) {
	cfg := DefaultConfig()
	cfg.Architectures = []string{"PerceiverForImageClassificationFourier"}
	cfg.NumLatents, cfg.DLatents, cfg.DModel = 32, 64, 37
	cfg.NumBlocks, cfg.NumSelfAttendsPerBlock = 2, 2
	cfg.NumSelfAttentionHeads, cfg.NumCrossAttentionHeads = 4, 1
	cfg.ID2Label = map[string]string{}
	cfg.Label2ID = map[string]int{}
	for i := 0; i < 10; i++ {
		name := "class_" + strconv.Itoa(i)
		cfg.ID2Label[strconv.Itoa(i)] = name
		cfg.Label2ID[name] = i
	}
	prep := preprocess.DefaultConfig()
	prep.Size = preprocess.Size{Height: 28, Width: 28}
	prep.CropSize = preprocess.Size{Height: 28, Width: 28}
	return NewRandom(cfg, prep, 2026)
}

// benchAdamW is torch.optim.AdamW's update (β 0.9/0.999, ε 1e-8, decoupled decay) over a model's
// parameters, which it first copies into owned slices.
type benchAdamW struct {
	m, v [][]float32
	t    int
}

func newBenchAdamW(m *Model, set ParamSet) *benchAdamW {
	o := &benchAdamW{}
	for _, p := range m.Weights.Trainable(set) {
		p.Param.Data = append([]float32(nil), p.Param.Data...)
		o.m = append(o.m, make([]float32, p.Param.Len()))
		o.v = append(o.v, make([]float32, p.Param.Len()))
	}
	m.WeightsChanged()
	return o
}

func (o *benchAdamW) step(g *Gradients, lr, decay float64) {
	const b1, b2, eps = 0.9, 0.999, 1e-8
	o.t++
	c1 := 1 - math.Pow(b1, float64(o.t))
	c2 := math.Sqrt(1 - math.Pow(b2, float64(o.t)))
	for i, pg := range g.Params {
		theta, grad, m, v := pg.Param.Data, pg.Data, o.m[i], o.v[i]
		par.For(len(theta), 1<<15, func(lo, hi int) {
			for k := lo; k < hi; k++ {
				th := theta[k] * float32(1-lr*decay)
				gk := grad[k]
				m[k] = b1*m[k] + (1-b1)*gk
				v[k] = b2*v[k] + (1-b2)*gk*gk
				den := float32(math.Sqrt(float64(v[k])))/float32(c2) + eps
				theta[k] = th - float32(lr/c1)*m[k]/den
			}
		})
	}
}

package explain

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/internal/sgemm"
)

// The class-specific methods, each on the backward pass of core.Model.ForwardBackward; y is the
// target's logit. Definitions (README, section "explain"):
//
//	chefer:               Ā_X = mean_heads max(0, ∇A_X ⊙ A_X);  R = (I + Ā_J)…(I + Ā_1);
//	                      map = Ā_dec · R · Ā_enc                         (token grid)
//	grad-rollout:         F_X = max(0, mean_heads ∇A_X ⊙ A_X);  Â_j = rownorm(½I + ½F_j);
//	                      map = F_dec · Â_J…Â_1 · F_enc                   (token grid)
//	saliency:             max_c |∂y/∂x_c|                                  (pixel grid)
//	input-x-gradient:     Σ_c x_c · ∂y/∂x_c                                (pixel grid, signed)
//	integrated-gradients: Σ_c (x − x′)_c · Σ_k w_k ∂y/∂x_c(x′ + α_k(x − x′)), Gauss–Legendre
//	                      nodes α_k and weights w_k on [0, 1]              (pixel grid, signed)
//	smoothgrad:           mean over samples of saliency(x + ε), ε ~ N(0, σ²),
//	                      σ = noise·(max x − min x)                        (pixel grid)
func init() {
	for _, m := range []Method{
		{Name: "chefer", Description: "Chefer et al. (2021) relevance: attention weighted by its positive gradient, propagated through the latents"},
		{Name: "grad-rollout", Description: "gradient rollout: attention rollout of the positive gradient-weighted attention"},
		{Name: "saliency", Description: "Simonyan et al. (2014): max over colour channels of |∂y/∂x|"},
		{Name: "input-x-gradient", Description: "Σ over colour channels of x·∂y/∂x (signed)"},
	} {
		name := m.Name
		m.Compute = func(in Input, _ Options) (Map, error) {
			maps, err := GradientMaps(in, []string{name})
			if err != nil {
				return Map{}, err
			}
			return maps[0], nil
		}
		Register(m)
	}
	Register(Method{Name: "integrated-gradients", Compute: IntegratedGradients,
		Description: "Sundararajan et al. (2017): gradients integrated from a baseline by Gauss–Legendre quadrature, times x − x′ (signed)"})
	Register(Method{Name: "smoothgrad", Compute: SmoothGrad,
		Description: "Smilkov et al. (2017): saliency averaged over copies of the image with Gaussian noise"})
}

// gradientMethods are the methods one backward pass serves together.
var gradientMethods = map[string]bool{"chefer": true, "grad-rollout": true, "saliency": true, "input-x-gradient": true}

// pixelGrid is the grid of a map over the pixels of an h×w image.
func pixelGrid(h, w int) core.TokenGrid {
	return core.TokenGrid{Rows: h, Cols: w, Height: h, Width: w, Stride: 1}
}

// GradientMaps computes any of chefer, grad-rollout, saliency and input-x-gradient from one
// forward and backward pass, in the order asked. The self-attention maps are folded into the
// relevance as the backward pass reaches them, never held together.
func GradientMaps(in Input, names []string) ([]Map, error) {
	if err := in.check(true); err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, n := range names {
		if !gradientMethods[n] {
			return nil, fmt.Errorf("explain: %q is not a single-pass gradient method", n)
		}
		want[n] = true
	}
	m := in.Model
	L := m.Config.NumLatents
	attn := want["chefer"] || want["grad-rollout"]
	tr := core.Trace{EncoderAttention: attn, DecoderAttention: attn}
	gt := core.GradTrace{Pixels: want["saliency"] || want["input-x-gradient"], EncoderAttention: attn, DecoderAttention: attn, Targets: []int{in.Target}}
	var chefer, rollout *product
	if attn {
		chefer, rollout = newProduct(L), newProduct(L)
		heads := m.Config.NumSelfAttentionHeads
		abar, f := make([]float32, L*L), make([]float32, L*L)
		gt.OnSelfAttention = func(_, _ int, probs, grad []float32) {
			if want["chefer"] {
				cheferRelevance(abar, probs, grad, heads)
				for i := 0; i < L; i++ {
					abar[i*L+i]++
				}
				chefer.mul(abar)
			}
			if want["grad-rollout"] {
				positiveMean(f, probs, grad, heads)
				for i := 0; i < L; i++ {
					row := f[i*L : (i+1)*L]
					var sum float64
					for k := range row {
						row[k] *= 0.5
						sum += float64(row[k])
					}
					row[i] += 0.5
					inv := float32(1 / (sum + 0.5))
					for k := range row {
						row[k] *= inv
					}
				}
				rollout.mul(f)
			}
		}
	}
	out, g, err := m.ForwardBackward(in.Pixels, 1, in.H, in.W, tr, gt)
	if err != nil {
		return nil, err
	}
	var res []Map
	for _, name := range names {
		switch name {
		case "chefer", "grad-rollout":
			n := out.Grid.Tokens()
			dec, enc := make([]float32, L), make([]float32, L*n)
			var R *product
			if name == "chefer" {
				cheferRelevance(dec, out.DecoderAttention, g.DecoderAttention, 1)
				cheferRelevance(enc, out.EncoderAttention, g.EncoderAttention, out.CrossHeads)
				R = chefer
			} else {
				positiveMean(dec, out.DecoderAttention, g.DecoderAttention, 1)
				positiveMean(enc, out.EncoderAttention, g.EncoderAttention, out.CrossHeads)
				R = rollout
			}
			// map = dec · R · enc, a row over the tokens.
			w := make([]float32, L)
			sgemm.Gemm(false, false, 1, L, L, 1, dec, L, R.m, L, 0, w, L)
			vals := make([]float32, n)
			sgemm.Gemm(false, false, 1, n, L, 1, w, L, enc, n, 0, vals, n)
			res = append(res, Map{Method: name, Grid: out.Grid, Values: vals})
		case "saliency":
			res = append(res, Map{Method: name, Grid: pixelGrid(in.H, in.W), Values: saliency(g.Pixels, in.H*in.W)})
		case "input-x-gradient":
			n := in.H * in.W
			vals := make([]float32, n)
			for c := 0; c < 3; c++ {
				for p := range vals {
					vals[p] += in.Pixels[c*n+p] * g.Pixels[c*n+p]
				}
			}
			res = append(res, Map{Method: name, Grid: pixelGrid(in.H, in.W), Values: vals, Signed: true})
		}
	}
	return res, nil
}

// cheferRelevance writes mean over heads of max(0, grad⊙probs) into dst [size].
func cheferRelevance(dst, probs, grad []float32, heads int) {
	size := len(dst)
	for i := range dst {
		var s float32
		for h := 0; h < heads; h++ {
			s += max(0, grad[h*size+i]*probs[h*size+i])
		}
		dst[i] = s / float32(heads)
	}
}

// positiveMean writes max(0, mean over heads of grad⊙probs) into dst [size].
func positiveMean(dst, probs, grad []float32, heads int) {
	size := len(dst)
	for i := range dst {
		var s float32
		for h := 0; h < heads; h++ {
			s += grad[h*size+i] * probs[h*size+i]
		}
		dst[i] = max(0, s/float32(heads))
	}
}

// product accumulates M ← M·A over L×L matrices, from M = I: the backward pass meets the
// applications last first, so M ends as A_J·…·A_1.
type product struct {
	l       int
	m, tmp  []float32
	started bool
}

func newProduct(l int) *product {
	return &product{l: l, m: make([]float32, l*l), tmp: make([]float32, l*l)}
}

func (p *product) mul(a []float32) {
	if !p.started {
		copy(p.m, a)
		p.started = true
		return
	}
	l := p.l
	sgemm.Gemm(false, false, l, l, l, 1, p.m, l, a, l, 0, p.tmp, l)
	p.m, p.tmp = p.tmp, p.m
}

// saliency is max over the three colour planes of |g| [3, n].
func saliency(g []float32, n int) []float32 {
	out := make([]float32, n)
	for p := range out {
		out[p] = max(abs32(g[p]), abs32(g[n+p]), abs32(g[2*n+p]))
	}
	return out
}

func abs32(x float32) float32 { return float32(math.Abs(float64(x))) }

// batchFor is how many images of in's size one backward pass takes at once: as many as fit a
// budget of about 128 MB of kept activations (the encoder attention and the hidden states), at
// most 16.
func batchFor(in Input, want int) int {
	c := &in.Model.Config
	g, err := in.Model.Weights.Input.Grid(in.H, in.W)
	if err != nil {
		return 1
	}
	per := c.NumLatents*g.Tokens() + (c.NumSelfAttentionApplications()+13)*c.NumLatents*c.DLatents
	return max(1, min(want, 16, (1<<25)/per))
}

// pixelGradients runs the backward pass on each image of xs [k, 3, H, W] for the target and calls
// use(i, grad [3, H, W]) for image i, in batches.
func pixelGradients(in Input, xs []float32, k int, use func(i int, grad []float32)) error {
	size := 3 * in.H * in.W
	bs := batchFor(in, k)
	for i0 := 0; i0 < k; i0 += bs {
		if in.ctx != nil && in.ctx.Err() != nil {
			return in.ctx.Err()
		}
		n := min(bs, k-i0)
		targets := make([]int, n)
		for i := range targets {
			targets[i] = in.Target
		}
		_, g, err := in.Model.ForwardBackward(xs[i0*size:(i0+n)*size], n, in.H, in.W, core.Trace{}, core.GradTrace{Pixels: true, Targets: targets})
		if err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			use(i0+i, g.Pixels[i*size:(i+1)*size])
		}
	}
	return nil
}

// Baseline returns the integrated-gradients baseline x′ [3, h, w] for the model's processor:
// "zero" is pixel_values 0 (the mean colour after normalisation), "black" the normalised image
// of zero bytes.
func Baseline(m *core.Model, kind string, h, w int) ([]float32, error) {
	x := make([]float32, 3*h*w)
	switch kind {
	case "", "zero":
	case "black":
		p := m.Preprocessor
		for c := 0; c < 3; c++ {
			v := float32(0)
			if p.DoNormalize {
				v = (0 - float32(p.ImageMean[c])) / float32(p.ImageStd[c])
			}
			for i := c * h * w; i < (c+1)*h*w; i++ {
				x[i] = v
			}
		}
	default:
		return nil, fmt.Errorf("explain: --baseline %q: want zero or black", kind)
	}
	return x, nil
}

// GaussLegendre returns the n nodes and weights of Gauss–Legendre quadrature on [0, 1], nodes
// ascending: Σ_k w_k f(α_k) integrates polynomials of degree up to 2n − 1 exactly.
func GaussLegendre(n int) (nodes, weights []float64) {
	nodes, weights = make([]float64, n), make([]float64, n)
	// legendre returns P_n(t) and P_n′(t), by the three-term recurrence.
	legendre := func(t float64) (p, dp float64) {
		p0, p1 := 1.0, t
		for k := 2; k <= n; k++ {
			p0, p1 = p1, ((2*float64(k)-1)*t*p1-(float64(k)-1)*p0)/float64(k)
		}
		return p1, float64(n) * (t*p1 - p0) / (t*t - 1)
	}
	for i := 0; i < (n+1)/2; i++ {
		// Newton's method on P_n from the classical estimate of its i-th largest root.
		t := math.Cos(math.Pi * (float64(i) + 0.75) / (float64(n) + 0.5))
		for iter := 0; iter < 100; iter++ {
			p, dp := legendre(t)
			dt := p / dp
			t -= dt
			if math.Abs(dt) < 1e-15 {
				break
			}
		}
		_, dp := legendre(t)
		w := 1 / ((1 - t*t) * dp * dp) // 2/((1 − t²)·P_n′²) on [−1, 1], halved for [0, 1]
		// t ↦ (1 ± t)/2 maps the symmetric pair of roots onto [0, 1].
		nodes[n-1-i], weights[n-1-i] = (1+t)/2, w
		nodes[i], weights[i] = (1-t)/2, w
	}
	return nodes, weights
}

// IntegratedGradients is the integrated-gradients method: opt.Steps Gauss–Legendre nodes from the
// baseline opt.Baseline, run as batches. Map.Notes holds the completeness check: "sum" (Σ of the
// attribution), "delta" (y(x) − y(x′)) and their difference relative to |delta|.
func IntegratedGradients(in Input, opt Options) (Map, error) {
	if err := in.check(true); err != nil {
		return Map{}, err
	}
	if opt.Steps < 1 {
		return Map{}, fmt.Errorf("explain: --steps %d: want at least 1", opt.Steps)
	}
	base, err := Baseline(in.Model, opt.Baseline, in.H, in.W)
	if err != nil {
		return Map{}, err
	}
	nodes, wts := GaussLegendre(opt.Steps)
	in.ctx = opt.Context
	return integrate(in, base, nodes, wts)
}

// integrate is Σ_c (x − x′)_c · Σ_k w_k ∂y/∂x_c(x′ + α_k (x − x′)) for any quadrature.
func integrate(in Input, base []float32, nodes, wts []float64) (Map, error) {
	size := 3 * in.H * in.W
	k := len(nodes)
	bs := batchFor(in, k)
	acc := make([]float64, size)
	xs := make([]float32, bs*size)
	for i0 := 0; i0 < k; i0 += bs {
		n := min(bs, k-i0)
		for i := 0; i < n; i++ {
			a := float32(nodes[i0+i])
			dst := xs[i*size : (i+1)*size]
			for p, x := range in.Pixels {
				dst[p] = base[p] + a*(x-base[p])
			}
		}
		err := pixelGradients(in, xs[:n*size], n, func(i int, g []float32) {
			w := wts[i0+i]
			for p, v := range g {
				acc[p] += w * float64(v)
			}
		})
		if err != nil {
			return Map{}, err
		}
	}
	n := in.H * in.W
	vals := make([]float32, n)
	var sum float64
	for p := range vals {
		var s float64
		for c := 0; c < 3; c++ {
			s += float64(in.Pixels[c*n+p]-base[c*n+p]) * acc[c*n+p]
		}
		vals[p] = float32(s)
		sum += s
	}
	both := append(append(make([]float32, 0, 2*size), in.Pixels...), base...)
	out, err := in.Model.Forward(both, 2, in.H, in.W, core.Trace{})
	if err != nil {
		return Map{}, err
	}
	labels := len(out.Logits) / 2
	delta := float64(out.Logits[in.Target]) - float64(out.Logits[labels+in.Target])
	rel := math.Abs(sum - delta)
	if delta != 0 {
		rel /= math.Abs(delta)
	}
	return Map{Method: "integrated-gradients", Grid: pixelGrid(in.H, in.W), Values: vals, Signed: true,
		Notes: map[string]float64{"sum": sum, "delta": delta, "completeness_error": rel}}, nil
}

// SmoothGrad is the smoothgrad method: the mean saliency of opt.Samples noisy copies of the
// image, drawn from a generator seeded with opt.Seed, so the map is reproducible.
func SmoothGrad(in Input, opt Options) (Map, error) {
	if err := in.check(true); err != nil {
		return Map{}, err
	}
	if opt.Samples < 1 {
		return Map{}, fmt.Errorf("explain: --samples %d: want at least 1", opt.Samples)
	}
	if !(opt.Noise >= 0) || math.IsInf(opt.Noise, 0) {
		return Map{}, fmt.Errorf("explain: --noise %g: want a fraction ≥ 0", opt.Noise)
	}
	lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
	for _, v := range in.Pixels {
		lo, hi = min(lo, v), max(hi, v)
	}
	sigma := opt.Noise * float64(hi-lo)
	rng := rand.New(rand.NewPCG(opt.Seed, 0x5eed5eed))
	size, n := 3*in.H*in.W, in.H*in.W
	xs := make([]float32, opt.Samples*size)
	for i := 0; i < opt.Samples; i++ {
		for p, x := range in.Pixels {
			xs[i*size+p] = x + float32(sigma*rng.NormFloat64())
		}
	}
	acc := make([]float64, n)
	in.ctx = opt.Context
	err := pixelGradients(in, xs, opt.Samples, func(_ int, g []float32) {
		for p, v := range saliency(g, n) {
			acc[p] += float64(v)
		}
	})
	if err != nil {
		return Map{}, err
	}
	vals := make([]float32, n)
	for p, v := range acc {
		vals[p] = float32(v / float64(opt.Samples))
	}
	return Map{Method: "smoothgrad", Grid: pixelGrid(in.H, in.W), Values: vals}, nil
}

// SharesBackward reports whether a method is one of those GradientMaps computes from one shared
// backward pass.
func SharesBackward(name string) bool { return gradientMethods[name] }

package faithfulness

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/internal/par"
)

// RoadCurve is one ROAD order's curve: the mean probability of the unperturbed prediction at each
// fraction of pixels removed and imputed, and the area under it over those fractions.
type RoadCurve struct {
	Fractions []float64 `json:"fractions"`
	Prob      []float64 `json:"prob"`
	AUCProb   float64   `json:"auc_prob"`
}

// Road is a map's two ROAD curves: most relevant first (MoRF) and least relevant first (LeRF).
type Road struct {
	MoRF RoadCurve `json:"morf"`
	LeRF RoadCurve `json:"lerf"`
}

// RoadScore is how a ROAD ranking orders methods: LeRF AUC − MoRF AUC (large when removing the
// top-ranked pixels hurts and removing the bottom-ranked ones does not).
func RoadScore(r Road) float64 { return r.LeRF.AUCProb - r.MoRF.AUCProb }

// RoadFractions returns p_j = j/steps for j = 1 … steps−1 (no 0, no 1).
func RoadFractions(steps int) []float64 {
	f := make([]float64, 0, max(steps-1, 0))
	for j := 1; j < steps; j++ {
		f = append(f, float64(j)/float64(steps))
	}
	return f
}

func newRoadCurve(steps int) RoadCurve {
	return RoadCurve{Fractions: RoadFractions(steps), Prob: make([]float64, steps-1)}
}

// RoadOptions set ROAD's fractions, noise and batching.
type RoadOptions struct {
	Steps int // fractions j/steps, j = 1 … steps−1 (default 10)
	Batch int // perturbed images per forward pass (default 8)
	// Noise is σ in [0, 1] intensity units; channel c's imputed values get (σ/Std[c])·z. 0: none.
	Noise float64
	Std   [3]float64 // the processor's image_std, which turns intensity units into pixel_values units
	// Seed and Stream seed the noise: one stream per image (Stream: the image's index), split by
	// order and fraction.
	Seed, Stream uint64
}

func (o RoadOptions) withDefaults() RoadOptions {
	if o.Steps < 1 {
		o.Steps = 10
	}
	if o.Batch < 1 {
		o.Batch = 8
	}
	return o
}

// EvaluateROAD runs ROAD (Rong et al. 2022) on every map of one image (each [H·W] on the pixel
// grid): for each order and fraction p_j, the first ⌊j·N/steps⌋ pixels of the order are imputed
// from their neighbours (ImputeLinear), noise is added to them, and the model scores the result
// by the softmax probability of the unperturbed prediction. Returns one Road per map.
func EvaluateROAD(m *core.Model, im Image, maps [][]float32, opt RoadOptions) ([]Road, error) {
	opt = opt.withDefaults()
	n := im.H * im.W
	if im.H < 1 || im.W < 1 || len(im.Pixels) != 3*n {
		return nil, fmt.Errorf("faithfulness: pixel_values has %d values, want 3×%d×%d", len(im.Pixels), im.H, im.W)
	}
	if opt.Noise < 0 || opt.Noise > 1 || math.IsNaN(opt.Noise) {
		return nil, fmt.Errorf("faithfulness: ROAD noise %g is outside [0, 1]", opt.Noise)
	}
	if opt.Noise > 0 && !(opt.Std[0] > 0 && opt.Std[1] > 0 && opt.Std[2] > 0) {
		return nil, fmt.Errorf("faithfulness: ROAD noise needs the processor's image_std, got %v", opt.Std)
	}
	target := im.Target()
	type job struct {
		order []int
		k     int // fraction index: j = k+1
		dir   int // 0 MoRF, 1 LeRF
		curve *RoadCurve
	}
	out := make([]Road, len(maps))
	var jobs []job
	for i, mp := range maps {
		if len(mp) != n {
			return nil, fmt.Errorf("faithfulness: map %d has %d values, want %d×%d pixels", i, len(mp), im.H, im.W)
		}
		out[i] = Road{MoRF: newRoadCurve(opt.Steps), LeRF: newRoadCurve(opt.Steps)}
		for dir, c := range []*RoadCurve{&out[i].MoRF, &out[i].LeRF} {
			order, err := Order(mp, dir == 0)
			if err != nil {
				return nil, fmt.Errorf("map %d: %w", i, err)
			}
			for k := range opt.Steps - 1 {
				jobs = append(jobs, job{order, k, dir, c})
			}
		}
	}
	pixels := make([]float64, 3*n)
	for i, v := range im.Pixels {
		pixels[i] = float64(v)
	}
	batch := min(opt.Batch, max(1, len(jobs)))
	buf := make([]float32, batch*3*n)
	imps := make([]*Imputer, batch)
	for b := range imps {
		imps[b] = NewImputer(im.H, im.W)
	}
	errs := make([]error, batch)
	for j0 := 0; j0 < len(jobs); j0 += batch {
		chunk := jobs[j0:min(j0+batch, len(jobs))]
		par.For(len(chunk), 1, func(lo, hi int) {
			for b := lo; b < hi; b++ {
				jb := chunk[b]
				// One noise stream per (image, order, fraction), shared by the maps: a job's draws
				// do not depend on the batch size or on which other methods run.
				stream := rand.New(rand.NewPCG(opt.Seed, opt.Stream<<20|uint64(jb.dir)<<19|uint64(jb.k)))
				errs[b] = imps[b].Perturb(buf[b*3*n:(b+1)*3*n], pixels, jb.order[:Removed(n, jb.k+1, opt.Steps)], opt.Noise, opt.Std, stream)
			}
		})
		if err := errors.Join(errs[:len(chunk)]...); err != nil {
			return nil, err
		}
		res, err := m.Forward(buf[:len(chunk)*3*n], len(chunk), im.H, im.W, core.Trace{})
		if err != nil {
			return nil, err
		}
		labels := len(res.Logits) / len(chunk)
		for b, jb := range chunk {
			jb.curve.Prob[jb.k] = core.Softmax(res.Logits[b*labels : (b+1)*labels])[target]
		}
	}
	for i := range out {
		out[i].MoRF.AUCProb = Trapezoid(out[i].MoRF.Fractions, out[i].MoRF.Prob)
		out[i].LeRF.AUCProb = Trapezoid(out[i].LeRF.Fractions, out[i].LeRF.Prob)
	}
	return out, nil
}

// AverageRoad is the mean of ROAD curves over images, point by point, with the areas of the
// averaged curves.
func AverageRoad(rs []Road) (Road, error) {
	if len(rs) == 0 {
		return Road{}, fmt.Errorf("faithfulness: average of no images")
	}
	k := len(rs[0].MoRF.Fractions)
	avg := Road{MoRF: RoadCurve{Fractions: rs[0].MoRF.Fractions, Prob: make([]float64, k)},
		LeRF: RoadCurve{Fractions: rs[0].LeRF.Fractions, Prob: make([]float64, k)}}
	for _, r := range rs {
		for _, d := range []struct{ dst, src *RoadCurve }{{&avg.MoRF, &r.MoRF}, {&avg.LeRF, &r.LeRF}} {
			if len(d.src.Fractions) != k || len(d.src.Prob) != k {
				return Road{}, fmt.Errorf("faithfulness: ROAD curves of %d and %d fractions cannot be averaged", k, len(d.src.Fractions))
			}
			for j := range k {
				d.dst.Prob[j] += d.src.Prob[j]
			}
		}
	}
	for _, c := range []*RoadCurve{&avg.MoRF, &avg.LeRF} {
		for j := range c.Prob {
			c.Prob[j] /= float64(len(rs))
		}
		c.AUCProb = Trapezoid(c.Fractions, c.Prob)
	}
	return avg, nil
}

// Neighbour weights of the noisy linear imputation (Rong et al. 2022): 1/6 for the four
// edge-adjacent pixels, 1/12 for the four diagonal ones.
var roadNeighbours = [8]struct {
	dr, dc int
	w      float64
}{
	{-1, -1, 1.0 / 12}, {-1, 0, 1.0 / 6}, {-1, 1, 1.0 / 12},
	{0, -1, 1.0 / 6}, {0, 1, 1.0 / 6},
	{1, -1, 1.0 / 12}, {1, 0, 1.0 / 6}, {1, 1, 1.0 / 12},
}

// RoadTolerance is the largest Euclidean norm of b − A·x (per colour channel) ImputeLinear accepts.
const RoadTolerance = 1e-10

// Imputer solves the imputation system of one image size, keeping its buffers between calls. An
// Imputer is not safe for concurrent use.
type Imputer struct {
	H, W int

	unknown    []int32 // pixel → unknown index, or −1 for a known pixel
	rowStart   []int32 // CSR of the off-diagonal entries, by unknown
	cols       []int32
	vals       []float64
	diag       []float64
	b, r, z, p []float64
	ap         []float64
	values     []float64 // the solution, [3][unknowns]

	// Iterations is the number of CG iterations (matrix passes, all channels at once) of the last
	// solve.
	Iterations int
}

// NewImputer prepares an imputer for h×w images.
func NewImputer(h, w int) *Imputer {
	u := make([]int32, h*w)
	for i := range u {
		u[i] = -1
	}
	return &Imputer{H: h, W: w, unknown: u}
}

// Perturb writes into dst the image pixels [3, H, W] (float64 pixel_values) with the pixels
// removed imputed (ImputeLinear) and, when noise > 0, (noise/std[c])·z added to channel c's imputed
// values, z ~ N(0, 1) drawn from rng channel by channel in the order of removed. Known pixels
// are copied unchanged.
func (im *Imputer) Perturb(dst []float32, pixels []float64, removed []int, noise float64, std [3]float64, rng *rand.Rand) error {
	n := im.H * im.W
	for i, v := range pixels {
		dst[i] = float32(v)
	}
	if len(removed) == 0 {
		return nil
	}
	vals, err := im.Impute(pixels, removed)
	if err != nil {
		return err
	}
	u := len(removed)
	for c := range 3 {
		scale := 0.0
		if noise > 0 {
			scale = noise / std[c]
		}
		for i, p := range removed {
			v := vals[c*u+i]
			if scale != 0 {
				v += scale * rng.NormFloat64()
			}
			dst[c*n+p] = float32(v)
		}
	}
	return nil
}

// Impute solves the noisy linear imputation system for the pixels removed (flat indices r·W + c,
// distinct) of pixels [3, H, W] and returns their values, [3][len(removed)] in the order of
// removed. Each removed pixel equals the weighted mean of its in-image neighbours (roadNeighbours),
// all removed pixels jointly, the others fixed: A·x = b with A symmetric positive definite
// (irreducibly diagonally dominant) whenever some pixel is known. Solved by conjugate gradients
// with a diagonal preconditioner to ‖b − A·x‖₂ ≤ RoadTolerance per channel; no dense matrix.
// The returned slice is the imputer's and is overwritten by the next call.
func (im *Imputer) Impute(pixels []float64, removed []int) ([]float64, error) {
	h, w := im.H, im.W
	n := h * w
	if len(pixels) != 3*n {
		return nil, fmt.Errorf("faithfulness: imputation of %d values, want 3×%d×%d", len(pixels), h, w)
	}
	u := len(removed)
	if u >= n {
		return nil, fmt.Errorf("faithfulness: imputation needs a known pixel (%d of %d removed)", u, n)
	}
	for _, p := range removed {
		if p < 0 || p >= n {
			return nil, fmt.Errorf("faithfulness: removed pixel %d is outside the %d×%d image", p, h, w)
		}
	}
	defer func() {
		for _, p := range removed {
			im.unknown[p] = -1
		}
	}()
	for i, p := range removed {
		if im.unknown[p] >= 0 {
			return nil, fmt.Errorf("faithfulness: removed pixel %d is listed twice", p)
		}
		im.unknown[p] = int32(i)
	}
	grow := func(s []float64, k int) []float64 {
		if cap(s) < k {
			return make([]float64, k)
		}
		return s[:k]
	}
	im.diag = grow(im.diag, u)
	im.b = grow(im.b, 3*u)
	im.values = grow(im.values, 3*u)
	im.r, im.z, im.p, im.ap = grow(im.r, 3*u), grow(im.z, 3*u), grow(im.p, 3*u), grow(im.ap, 3*u)
	if cap(im.rowStart) < u+1 {
		im.rowStart = make([]int32, u+1)
	}
	im.rowStart = im.rowStart[:u+1]
	im.cols, im.vals = im.cols[:0], im.vals[:0]
	for i, p := range removed {
		r, c := p/w, p%w
		var d, b0, b1, b2 float64
		im.rowStart[i] = int32(len(im.cols))
		for _, nb := range roadNeighbours {
			rr, cc := r+nb.dr, c+nb.dc
			if rr < 0 || rr >= h || cc < 0 || cc >= w {
				continue
			}
			q := rr*w + cc
			d += nb.w
			if j := im.unknown[q]; j >= 0 {
				im.cols = append(im.cols, j)
				im.vals = append(im.vals, nb.w)
			} else {
				b0 += nb.w * pixels[q]
				b1 += nb.w * pixels[n+q]
				b2 += nb.w * pixels[2*n+q]
			}
		}
		im.diag[i] = d
		im.b[i], im.b[u+i], im.b[2*u+i] = b0, b1, b2
	}
	im.rowStart[u] = int32(len(im.cols))
	if err := im.solve(u); err != nil {
		return nil, fmt.Errorf("faithfulness: imputation of %d pixels: %w", u, err)
	}
	return im.values, nil
}

// mul sets y = A·x for the three channels at once (x, y: [3][u], one matrix pass).
func (im *Imputer) mul(y, x []float64, u int) {
	x0, x1, x2 := x[:u], x[u:2*u], x[2*u:3*u]
	y0, y1, y2 := y[:u], y[u:2*u], y[2*u:3*u]
	for i := range u {
		d := im.diag[i]
		s0, s1, s2 := d*x0[i], d*x1[i], d*x2[i]
		for e := im.rowStart[i]; e < im.rowStart[i+1]; e++ {
			v, j := im.vals[e], im.cols[e]
			s0 -= v * x0[j]
			s1 -= v * x1[j]
			s2 -= v * x2[j]
		}
		y0[i], y1[i], y2[i] = s0, s1, s2
	}
}

// solve runs preconditioned conjugate gradients (M = diag A) from x = 0 on the three channels
// together, one matrix pass per iteration for all three; a channel stops moving once its residual
// is small. The recursive residual drifts from the true one, so convergence is confirmed on
// b − A·x, restarting from x where needed.
func (im *Imputer) solve(u int) error {
	x, r, z, p, ap, b := im.values, im.r, im.z, im.p, im.ap, im.b
	clear(x)
	copy(r, b)
	limit := 10*u + 1000
	var rz, rr [3]float64
	var active [3]bool
	dot := func(c int, a, b []float64) float64 {
		var s float64
		for i := c * u; i < (c+1)*u; i++ {
			s += a[i] * b[i]
		}
		return s
	}
	restart := func() bool { // from the current residual; false when every channel has converged
		left := false
		for c := range 3 {
			rr[c] = dot(c, r, r)
			active[c] = math.Sqrt(rr[c]) > RoadTolerance
			if !active[c] {
				clear(p[c*u : (c+1)*u])
				continue
			}
			left = true
			for i := c * u; i < (c+1)*u; i++ {
				z[i] = r[i] / im.diag[i%u]
			}
			rz[c] = dot(c, r, z)
			copy(p[c*u:(c+1)*u], z[c*u:(c+1)*u])
		}
		return left
	}
	im.Iterations = 0
	for restart() {
		for im.Iterations < limit {
			im.mul(ap, p, u)
			im.Iterations++
			moving := false
			for c := range 3 {
				if !active[c] {
					continue
				}
				alpha := rz[c] / dot(c, p, ap)
				var s, rzNew float64
				for i := c * u; i < (c+1)*u; i++ {
					x[i] += alpha * p[i]
					r[i] -= alpha * ap[i]
					s += r[i] * r[i]
				}
				if math.Sqrt(s) <= RoadTolerance/4 {
					active[c] = false
					clear(p[c*u : (c+1)*u])
					continue
				}
				moving = true
				for i := c * u; i < (c+1)*u; i++ {
					z[i] = r[i] / im.diag[i%u]
					rzNew += r[i] * z[i]
				}
				beta := rzNew / rz[c]
				rz[c] = rzNew
				for i := c * u; i < (c+1)*u; i++ {
					p[i] = z[i] + beta*p[i]
				}
			}
			if !moving {
				break
			}
		}
		if im.Iterations >= limit {
			return fmt.Errorf("conjugate gradients did not reach a residual of %g in %d iterations", RoadTolerance, limit)
		}
		im.mul(ap, x, u) // the true residual decides
		for i := range r {
			r[i] = b[i] - ap[i]
		}
	}
	return nil
}

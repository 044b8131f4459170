package sae

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/perceiverkit/perceiver/core/weights"
	"github.com/perceiverkit/perceiver/internal/par"
)

// AuxCoef weighs the AuxK loss ([OA] Config.auxk_coef).
const AuxCoef = 1.0 / 32

// Adam's constants ([OA] Config: betas default, eps 6.25e-10).
const (
	beta1   = 0.9
	beta2   = 0.999
	adamEps = 6.25e-10
)

// Config holds the hyperparameters of a run.
type Config struct {
	Dict       int     // M, dictionary entries
	K          int     // active entries per code
	AuxK       int     // k' for AuxK (0: d/2 rounded to a power of two, at most M)
	DeadWindow int64   // samples without firing before a latent counts as dead (0: one epoch, n_train)
	Epochs     int     // passes over the training samples
	Batch      int     // samples per step
	LR         float64 // Adam's constant learning rate
	Seed       uint64
	Holdout    float64 // fraction of units held out
}

// DefaultAuxK is the power of two nearest d/2 (at least 1, at most m).
func DefaultAuxK(d, m int) int {
	h := max(1, d/2)
	p := 1
	for p*2 <= h {
		p *= 2
	}
	if h-p > 2*p-h {
		p *= 2
	}
	return min(p, m)
}

// Check reports a hyperparameter out of range, naming its flag.
func (c Config) Check(d int) error {
	switch {
	case c.Dict < 1:
		return fmt.Errorf("--dict %d: want at least 1", c.Dict)
	case c.K < 1 || c.K > c.Dict:
		return fmt.Errorf("--k %d: want 1…--dict (%d)", c.K, c.Dict)
	case c.AuxK < 0 || c.AuxK > c.Dict:
		return fmt.Errorf("--aux-k %d: want 0 (default d/2) … --dict (%d)", c.AuxK, c.Dict)
	case c.Epochs < 1:
		return fmt.Errorf("--epochs %d: want at least 1", c.Epochs)
	case c.Batch < 1:
		return fmt.Errorf("--batch %d: want at least 1", c.Batch)
	case !(c.LR > 0) || math.IsInf(c.LR, 0):
		return fmt.Errorf("--lr %v: want a positive number", c.LR)
	case !(c.Holdout >= 0 && c.Holdout < 1):
		return fmt.Errorf("--holdout %v: want 0 ≤ h < 1", c.Holdout)
	case c.DeadWindow < 0:
		return fmt.Errorf("--dead-window %d: want 0 (one epoch) or more", c.DeadWindow)
	}
	return nil
}

// MemoryBytes estimates what training holds: parameters, their gradients and Adam's two moments,
// and the batch's buffers.
func MemoryBytes(d, m, batch int) int64 {
	params := int64(2*m*d + m + d)
	return 4 * (4*params + int64(batch)*int64(m+6*d+4*m))
}

// Split divides units (images) into training and holdout sets.
type Split struct{ Train, Holdout []int }

// MakeSplit holds out round(h·n) units picked by a permutation seeded with seed; both lists are
// sorted.
func MakeSplit(n int, h float64, seed uint64) Split {
	nh := int(math.Round(h * float64(n)))
	perm := rand.New(rand.NewPCG(seed, streamSplit)).Perm(n)
	s := Split{Holdout: slices.Clone(perm[:nh]), Train: slices.Clone(perm[nh:])}
	slices.Sort(s.Holdout)
	slices.Sort(s.Train)
	return s
}

// State is a training run's position: weights, Adam's moments and step count, the dead-latent
// counters and the next batch. It is what a checkpoint holds.
type State struct {
	Model              *SAE
	MEnc, VEnc         []float32
	MBEnc, VBEnc       []float32
	MDict, VDict       []float32
	MBDec, VBDec       []float32
	Step               int64   // Adam steps taken
	Epoch, Next        int     // the next batch: epoch (0-based) and batch number within it
	Since              []int64 // samples since each latent last fired
	Scale              float64 // S: mean over training samples of ‖x − μ‖²
	AuxK               int
	DeadWindow, NTrain int64
}

// Stats describes one step, for progress lines.
type Stats struct {
	Epoch, Step          int
	Loss, FVU, AuxLoss   float64
	L0, DeadFraction     float64
	Samples, TotalSample int64
}

// Options steer Train besides the hyperparameters.
type Options struct {
	// Resume continues from a checkpoint (its Config must equal this run's: the caller checks
	// run identity).
	Resume *State
	// OnStep is called after every step.
	OnStep func(*State, Stats) error
}

// samples lists the training samples of a split, unit-major.
func samples(data Data, units []int) []int {
	p := data.PerUnit()
	out := make([]int, 0, len(units)*p)
	for _, u := range units {
		for l := 0; l < p; l++ {
			out = append(out, u*p+l)
		}
	}
	return out
}

// NewState initialises a run on the training units: random directions for the dictionary,
// W_enc = W_decᵀ, b_dec the geometric median, S from the data.
func NewState(data Data, train []int, cfg Config) (*State, error) {
	d := data.Dim()
	if err := cfg.Check(d); err != nil {
		return nil, err
	}
	rows := samples(data, train)
	if len(rows) == 0 {
		return nil, fmt.Errorf("no training rows")
	}
	s := NewRandom(d, cfg.Dict, cfg.K, cfg.Seed)
	med, scale := geometricMedian(data, rows)
	for i := range med {
		s.BDec[i] = float32(med[i])
	}
	if !(scale > 0) {
		return nil, fmt.Errorf("the training rows are all equal: nothing to reconstruct")
	}
	st := &State{Model: s, Since: make([]int64, cfg.Dict), Scale: scale, NTrain: int64(len(rows))}
	st.AuxK = cfg.AuxK
	if st.AuxK == 0 {
		st.AuxK = DefaultAuxK(d, cfg.Dict)
	}
	st.DeadWindow = cfg.DeadWindow
	if st.DeadWindow == 0 {
		st.DeadWindow = st.NTrain
	}
	md, m := d, cfg.Dict
	for _, p := range []*[]float32{&st.MEnc, &st.VEnc, &st.MDict, &st.VDict} {
		*p = make([]float32, m*md)
	}
	st.MBEnc, st.VBEnc = make([]float32, m), make([]float32, m)
	st.MBDec, st.VBDec = make([]float32, d), make([]float32, d)
	return st, nil
}

// geometricMedian runs Weiszfeld's iteration from the mean (weights 1/max(‖x−m‖, 1e-8), at most
// 100 iterations, until a step ≤ 1e-7·max(1, ‖m‖)), and returns it with S = mean ‖x − μ‖².
func geometricMedian(data Data, rows []int) ([]float64, float64) {
	d := data.Dim()
	n := len(rows)
	buf := make([]float32, d)
	mean := make([]float64, d)
	for _, s := range rows {
		data.Read(buf, s)
		for i, v := range buf {
			mean[i] += float64(v)
		}
	}
	for i := range mean {
		mean[i] /= float64(n)
	}
	var scale float64
	for _, s := range rows {
		data.Read(buf, s)
		for i, v := range buf {
			dv := float64(v) - mean[i]
			scale += dv * dv
		}
	}
	scale /= float64(n)
	m := slices.Clone(mean)
	next := make([]float64, d)
	for it := 0; it < 100; it++ {
		clear(next)
		var wsum float64
		for _, s := range rows {
			data.Read(buf, s)
			var dist float64
			for i, v := range buf {
				dv := float64(v) - m[i]
				dist += dv * dv
			}
			w := 1 / max(math.Sqrt(dist), 1e-8)
			wsum += w
			for i, v := range buf {
				next[i] += w * float64(v)
			}
		}
		var step, norm float64
		for i := range next {
			next[i] /= wsum
			step += (next[i] - m[i]) * (next[i] - m[i])
			norm += next[i] * next[i]
		}
		copy(m, next)
		if math.Sqrt(step) <= 1e-7*max(1, math.Sqrt(norm)) {
			break
		}
	}
	return m, scale
}

// trainer holds one run's buffers.
type trainer struct {
	st    *State
	data  Data
	cfg   Config
	b     int // rows in the current batch
	x, xc []float32
	pre   []float32
	idx   []int32
	val   []float32
	aidx  []int32
	aval  []float32
	xhat  []float32
	e     []float32
	ehat  []float32
	gx    []float32 // dL/dx̂
	ge    []float32 // dL/dê
	dpre  []float32 // [b, k] main, then aux [b, ka]
	adpre []float32
	gEnc  []float32
	gDict []float32
	gBEnc []float32
	gBDec []float64
	touch []bool
	dead  []int32
	fired []bool
	// entries bucketed by latent for the scatter
	cnt []int32
	ent []int32 // row*width + slot, grouped by latent
	off []int32
}

func newTrainer(st *State, data Data, cfg Config) *trainer {
	d, m, k, b := st.Model.D, st.Model.M, st.Model.K, cfg.Batch
	ka := st.AuxK
	return &trainer{st: st, data: data, cfg: cfg,
		x: make([]float32, b*d), xc: make([]float32, b*d), pre: make([]float32, b*m),
		idx: make([]int32, b*k), val: make([]float32, b*k), aidx: make([]int32, b*ka), aval: make([]float32, b*ka),
		xhat: make([]float32, b*d), e: make([]float32, b*d), ehat: make([]float32, b*d),
		gx: make([]float32, b*d), ge: make([]float32, b*d), dpre: make([]float32, b*k), adpre: make([]float32, b*ka),
		gEnc: make([]float32, m*d), gDict: make([]float32, m*d), gBEnc: make([]float32, m), gBDec: make([]float64, d),
		touch: make([]bool, m), fired: make([]bool, m), cnt: make([]int32, m), off: make([]int32, m+1),
		ent: make([]int32, b*(k+ka)),
	}
}

// Train runs the epochs from st's position and returns the final state.
func Train(data Data, train []int, cfg Config, opt Options) (*State, error) {
	var st *State
	if opt.Resume != nil {
		st = opt.Resume
	} else {
		var err error
		if st, err = NewState(data, train, cfg); err != nil {
			return nil, err
		}
	}
	rows := samples(data, train)
	if int64(len(rows)) != st.NTrain {
		return nil, fmt.Errorf("resume: %d training rows, the checkpoint has %d", len(rows), st.NTrain)
	}
	t := newTrainer(st, data, cfg)
	steps := (len(rows) + cfg.Batch - 1) / cfg.Batch
	total := int64(cfg.Epochs) * int64(len(rows))
	for st.Epoch < cfg.Epochs {
		perm := rand.New(rand.NewPCG(cfg.Seed, uint64(streamEpoch+st.Epoch))).Perm(len(rows))
		for st.Next < steps {
			lo := st.Next * cfg.Batch
			hi := min(len(rows), lo+cfg.Batch)
			batch := perm[lo:hi]
			t.b = len(batch)
			d := st.Model.D
			par.For(len(batch), 64, func(a, z int) {
				for r := a; r < z; r++ {
					data.Read(t.x[r*d:(r+1)*d], rows[batch[r]])
				}
			})
			stats := t.step()
			st.Next++
			stats.Epoch, stats.Step = st.Epoch, st.Next
			stats.Samples = int64(st.Epoch)*int64(len(rows)) + int64(hi)
			stats.TotalSample = total
			if math.IsNaN(stats.Loss) || math.IsInf(stats.Loss, 0) {
				return nil, fmt.Errorf("epoch %d step %d: the loss is %v; lower --lr", st.Epoch+1, st.Next, stats.Loss)
			}
			if opt.OnStep != nil {
				if err := opt.OnStep(st, stats); err != nil {
					return st, err
				}
			}
		}
		st.Epoch++
		st.Next = 0
	}
	return st, nil
}

// step runs forward, loss, backward and the Adam update on the batch in t.x.
func (t *trainer) step() Stats {
	st, s := t.st, t.st.Model
	d, m, k, ka, b := s.D, s.M, s.K, st.AuxK, t.b
	x, xc, pre := t.x[:b*d], t.xc[:b*d], t.pre[:b*m]
	s.preActivations(pre, xc, x, b)

	// TopK, ReLU, decode, residual.
	par.For(b, 8, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			iv, vv := t.idx[r*k:(r+1)*k], t.val[r*k:(r+1)*k]
			topK(iv, vv, pre[r*m:(r+1)*m], k)
			out := t.xhat[r*d : (r+1)*d]
			copy(out, s.BDec)
			for e := range vv {
				vv[e] = max(vv[e], 0)
				if vv[e] > 0 {
					axpy(out, vv[e], s.Dict[int(iv[e])*d:])
				}
			}
			er := t.e[r*d : (r+1)*d]
			xr := x[r*d : (r+1)*d]
			for i := range er {
				er[i] = xr[i] - out[i]
			}
		}
	})
	// Firing counters, then the dead latents (after this update, [OA]).
	clear(t.fired)
	var l0 int
	for i, v := range t.val[:b*k] {
		if v > 0 {
			t.fired[t.idx[i]] = true
			l0++
		}
	}
	t.dead = t.dead[:0]
	for j := range st.Since {
		if t.fired[j] {
			st.Since[j] = 0
		} else {
			st.Since[j] += int64(b)
		}
		if st.Since[j] >= st.DeadWindow {
			t.dead = append(t.dead, int32(j))
		}
	}
	var sse float64
	for _, v := range t.e[:b*d] {
		sse += float64(v) * float64(v)
	}
	norm := 1 / (float64(b) * st.Scale)
	loss := sse * norm
	fvu := loss

	// AuxK on the dead latents.
	kd := min(ka, len(t.dead))
	var auxLoss float64
	auxOn := false
	if kd > 0 {
		par.For(b, 8, func(lo, hi int) {
			sub := make([]float32, len(t.dead))
			for r := lo; r < hi; r++ {
				pr := pre[r*m : (r+1)*m]
				for i, j := range t.dead {
					sub[i] = pr[j]
				}
				iv, vv := t.aidx[r*kd:(r+1)*kd], t.aval[r*kd:(r+1)*kd]
				topK(iv, vv, sub, kd)
				out := t.ehat[r*d : (r+1)*d]
				clear(out)
				for e := range vv {
					iv[e] = t.dead[iv[e]]
					vv[e] = max(vv[e], 0)
					if vv[e] > 0 {
						axpy(out, vv[e], s.Dict[int(iv[e])*d:])
					}
				}
			}
		})
		mean := make([]float64, d)
		for r := 0; r < b; r++ {
			for i, v := range t.e[r*d : (r+1)*d] {
				mean[i] += float64(v)
			}
		}
		for i := range mean {
			mean[i] /= float64(b)
		}
		var num, den float64
		for r := 0; r < b; r++ {
			er, hr := t.e[r*d:(r+1)*d], t.ehat[r*d:(r+1)*d]
			for i := range er {
				dv := float64(er[i]) - mean[i]
				den += dv * dv
				dh := float64(hr[i]) - float64(er[i])
				num += dh * dh
			}
		}
		if den > 0 {
			auxOn = true
			auxLoss = num / den
			loss += AuxCoef * auxLoss
			ca := float32(2 * AuxCoef / den)
			for i := range t.ge[:b*d] {
				t.ge[i] = ca * (t.ehat[i] - t.e[i])
			}
		}
	}
	if !auxOn {
		kd = 0
	}

	// Backward: dL/dx̂ = −2e·norm; dpre through the decoder rows of the active entries.
	cg := float32(-2 * norm)
	for i := range t.gx[:b*d] {
		t.gx[i] = cg * t.e[i]
	}
	par.For(b, 8, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			g := t.gx[r*d : (r+1)*d]
			for e := 0; e < k; e++ {
				i := r*k + e
				t.dpre[i] = 0
				if t.val[i] > 0 {
					t.dpre[i] = dot(s.Dict[int(t.idx[i])*d:(int(t.idx[i])+1)*d], g)
				}
			}
			if kd > 0 {
				ga := t.ge[r*d : (r+1)*d]
				for e := 0; e < kd; e++ {
					i := r*kd + e
					t.adpre[i] = 0
					if t.aval[i] > 0 {
						t.adpre[i] = dot(s.Dict[int(t.aidx[i])*d:(int(t.aidx[i])+1)*d], ga)
					}
				}
			}
		}
	})
	// Bucket the entries by latent (row order kept), so each latent's gradient row is summed by
	// one goroutine in a fixed order.
	w := k + kd
	clear(t.cnt)
	for r := 0; r < b; r++ {
		for e := 0; e < k; e++ {
			t.cnt[t.idx[r*k+e]]++
		}
		for e := 0; e < kd; e++ {
			t.cnt[t.aidx[r*kd+e]]++
		}
	}
	t.off[0] = 0
	for j := 0; j < m; j++ {
		t.off[j+1] = t.off[j] + t.cnt[j]
	}
	fill := slices.Clone(t.off[:m])
	for r := 0; r < b; r++ {
		for e := 0; e < k; e++ {
			j := t.idx[r*k+e]
			t.ent[fill[j]] = int32(r*w + e)
			fill[j]++
		}
		for e := 0; e < kd; e++ {
			j := t.aidx[r*kd+e]
			t.ent[fill[j]] = int32(r*w + k + e)
			fill[j]++
		}
	}
	par.For(m, 16, func(lo, hi int) {
		for j := lo; j < hi; j++ {
			es := t.ent[t.off[j]:t.off[j+1]]
			t.touch[j] = false
			var gb float32
			genc, gdict := t.gEnc[j*d:(j+1)*d], t.gDict[j*d:(j+1)*d]
			for n, en := range es {
				r, slot := int(en)/w, int(en)%w
				var z, dp float32
				var g []float32
				if slot < k {
					z, dp, g = t.val[r*k+slot], t.dpre[r*k+slot], t.gx[r*d:(r+1)*d]
				} else {
					z, dp, g = t.aval[r*kd+slot-k], t.adpre[r*kd+slot-k], t.ge[r*d:(r+1)*d]
				}
				if n == 0 || !t.touch[j] {
					clear(genc)
					clear(gdict)
					t.touch[j] = true
				}
				axpy(gdict, z, g)
				axpy(genc, dp, xc[r*d:(r+1)*d])
				gb += dp
			}
			t.gBEnc[j] = gb
			if t.touch[j] {
				// Remove the parallel component of the decoder column's gradient.
				wj := s.Dict[j*d : (j+1)*d]
				axpy(gdict, -dot(wj, gdict), wj)
			}
		}
	})
	// b_dec: Σ dL/dx̂ − Σ dpre·W_enc rows.
	clear(t.gBDec)
	for r := 0; r < b; r++ {
		for i, v := range t.gx[r*d : (r+1)*d] {
			t.gBDec[i] += float64(v)
		}
		for e := 0; e < k; e++ {
			if dp := t.dpre[r*k+e]; dp != 0 {
				row := s.Enc[int(t.idx[r*k+e])*d:]
				for i := 0; i < d; i++ {
					t.gBDec[i] -= float64(dp) * float64(row[i])
				}
			}
		}
		for e := 0; e < kd; e++ {
			if dp := t.adpre[r*kd+e]; dp != 0 {
				row := s.Enc[int(t.aidx[r*kd+e])*d:]
				for i := 0; i < d; i++ {
					t.gBDec[i] -= float64(dp) * float64(row[i])
				}
			}
		}
	}

	// Adam on every parameter (rows without gradient still move with their moments).
	st.Step++
	bc1 := 1 - math.Pow(beta1, float64(st.Step))
	bc2 := 1 - math.Pow(beta2, float64(st.Step))
	stepSize := float32(t.cfg.LR / bc1)
	sq2 := float32(math.Sqrt(bc2))
	par.For(m, 16, func(lo, hi int) {
		for j := lo; j < hi; j++ {
			var genc, gdict []float32
			if t.touch[j] {
				genc, gdict = t.gEnc[j*d:(j+1)*d], t.gDict[j*d:(j+1)*d]
			}
			adam(s.Enc[j*d:(j+1)*d], st.MEnc[j*d:(j+1)*d], st.VEnc[j*d:(j+1)*d], genc, stepSize, sq2)
			adam(s.Dict[j*d:(j+1)*d], st.MDict[j*d:(j+1)*d], st.VDict[j*d:(j+1)*d], gdict, stepSize, sq2)
		}
	})
	adam(s.BEnc, st.MBEnc, st.VBEnc, t.gBEnc, stepSize, sq2)
	gbd := make([]float32, d)
	for i, v := range t.gBDec {
		gbd[i] = float32(v)
	}
	adam(s.BDec, st.MBDec, st.VBDec, gbd, stepSize, sq2)
	s.normalize()

	return Stats{Loss: loss, FVU: fvu, AuxLoss: auxLoss, L0: float64(l0) / float64(b), DeadFraction: float64(len(t.dead)) / float64(m)}
}

// adam is torch.optim.Adam's update (no weight decay, not amsgrad) on p; g nil means zero.
func adam(p, m1, m2, g []float32, stepSize, sqrtBC2 float32) {
	for i := range p {
		var gi float32
		if g != nil {
			gi = g[i]
		}
		m1[i] = beta1*m1[i] + (1-beta1)*gi
		m2[i] = beta2*m2[i] + (1-beta2)*gi*gi
		denom := float32(math.Sqrt(float64(m2[i])))/sqrtBC2 + adamEps
		p[i] -= stepSize * m1[i] / denom
	}
}

// Metrics are a split's reconstruction statistics (float64 sums).
type Metrics struct {
	FVU          float64 `json:"fvu"`
	MSE          float64 `json:"mse"`
	L0           float64 `json:"l0"`
	DeadFraction float64 `json:"dead_fraction"`
	Rows         int     `json:"rows"`
}

// Evaluate computes the metrics of the units' samples under s.
func Evaluate(s *SAE, data Data, units []int) Metrics {
	rows := samples(data, units)
	n := len(rows)
	if n == 0 {
		return Metrics{}
	}
	d, k := s.D, s.K
	mean := make([]float64, d)
	var sse, l0 float64
	fired := make([]bool, s.M)
	const chunk = 1024
	x := make([]float32, chunk*d)
	xh := make([]float32, chunk*d)
	idx := make([]int32, chunk*k)
	val := make([]float32, chunk*k)
	// First pass: the mean; second: errors and variance about it.
	buf := make([]float32, d)
	for _, r := range rows {
		data.Read(buf, r)
		for i, v := range buf {
			mean[i] += float64(v)
		}
	}
	for i := range mean {
		mean[i] /= float64(n)
	}
	var sst float64
	for lo := 0; lo < n; lo += chunk {
		hi := min(n, lo+chunk)
		c := hi - lo
		par.For(c, 64, func(a, z int) {
			for r := a; r < z; r++ {
				data.Read(x[r*d:(r+1)*d], rows[lo+r])
			}
		})
		s.Encode(idx, val, x[:c*d], c)
		s.Decode(xh, idx, val, c)
		for r := 0; r < c; r++ {
			for i := 0; i < d; i++ {
				v := float64(x[r*d+i])
				e := v - float64(xh[r*d+i])
				sse += e * e
				dv := v - mean[i]
				sst += dv * dv
			}
			for e := 0; e < k; e++ {
				if val[r*k+e] != 0 {
					l0++
					fired[idx[r*k+e]] = true
				}
			}
		}
	}
	dead := 0
	for _, f := range fired {
		if !f {
			dead++
		}
	}
	return Metrics{FVU: sse / sst, MSE: sse / float64(n*d), L0: l0 / float64(n), DeadFraction: float64(dead) / float64(s.M), Rows: n}
}

// checkpointState is the JSON part of a checkpoint.
type checkpointState struct {
	D, M, K            int
	Step               int64
	Epoch, Next        int
	Since              []int64
	Scale              float64
	AuxK               int
	DeadWindow, NTrain int64
	Identity           map[string]string
}

// SaveCheckpoint writes st to path (one safetensors file, through a temporary name and a rename,
// so a kill at any moment leaves the previous checkpoint or this one).
func SaveCheckpoint(path string, st *State, identity map[string]string) error {
	s := st.Model
	cs := checkpointState{D: s.D, M: s.M, K: s.K, Step: st.Step, Epoch: st.Epoch, Next: st.Next, Since: st.Since,
		Scale: st.Scale, AuxK: st.AuxK, DeadWindow: st.DeadWindow, NTrain: st.NTrain, Identity: identity}
	raw, err := json.Marshal(cs)
	if err != nil {
		return err
	}
	t := func(name string, data []float32) *weights.Tensor {
		return &weights.Tensor{Name: name, Shape: []int{len(data)}, Data: data}
	}
	return weights.WriteSafetensors(path, []*weights.Tensor{
		t("enc", s.Enc), t("benc", s.BEnc), t("dict", s.Dict), t("bdec", s.BDec),
		t("m_enc", st.MEnc), t("v_enc", st.VEnc), t("m_benc", st.MBEnc), t("v_benc", st.VBEnc),
		t("m_dict", st.MDict), t("v_dict", st.VDict), t("m_bdec", st.MBDec), t("v_bdec", st.VBDec),
	}, map[string]string{"state": string(raw)})
}

// LoadCheckpoint reads a checkpoint and the run identity stored with it.
func LoadCheckpoint(path string) (*State, map[string]string, error) {
	f, err := weights.OpenSafetensors(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	var cs checkpointState
	if err := json.Unmarshal([]byte(f.Metadata["state"]), &cs); err != nil {
		return nil, nil, fmt.Errorf("%s: not an sae checkpoint: %w", path, err)
	}
	get := func(name string, n int) ([]float32, error) {
		t, err := f.Get(name, n)
		if err != nil {
			return nil, err
		}
		return append([]float32(nil), t.Data...), nil
	}
	md, m, d := cs.M*cs.D, cs.M, cs.D
	st := &State{Model: &SAE{D: d, M: m, K: cs.K}, Step: cs.Step, Epoch: cs.Epoch, Next: cs.Next, Since: cs.Since,
		Scale: cs.Scale, AuxK: cs.AuxK, DeadWindow: cs.DeadWindow, NTrain: cs.NTrain}
	for _, p := range []struct {
		dst  *[]float32
		name string
		n    int
	}{{&st.Model.Enc, "enc", md}, {&st.Model.BEnc, "benc", m}, {&st.Model.Dict, "dict", md}, {&st.Model.BDec, "bdec", d},
		{&st.MEnc, "m_enc", md}, {&st.VEnc, "v_enc", md}, {&st.MBEnc, "m_benc", m}, {&st.VBEnc, "v_benc", m},
		{&st.MDict, "m_dict", md}, {&st.VDict, "v_dict", md}, {&st.MBDec, "m_bdec", d}, {&st.VBDec, "v_bdec", d}} {
		v, err := get(p.name, p.n)
		if err != nil {
			return nil, nil, err
		}
		*p.dst = v
	}
	if len(st.Since) != m {
		return nil, nil, fmt.Errorf("%s: damaged checkpoint (%d dead counters for %d latents)", path, len(st.Since), m)
	}
	return st, cs.Identity, nil
}

package linear

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"gonum.org/v1/gonum/optimize"
)

// Model is a fitted multinomial logistic regression, including the standardisation of its inputs.
type Model struct {
	Classes int       // K
	Dim     int       // D
	Mean    []float64 // [D] subtracted from raw features
	Scale   []float64 // [D] divides centred features (never 0)
	W       []float64 // [K, D] row-major, acting on standardised features
	B       []float64 // [K] intercepts
}

// FitOptions controls the L-BFGS solve.
type FitOptions struct {
	MaxIter int     // major iterations; 0 means 1000
	Tol     float64 // stop when the largest |gradient| of the per-sample objective is below; 0 means 1e-5
}

// FitInfo describes how a solve ended.
type FitInfo struct {
	C          float64 `json:"C"`
	Iterations int     `json:"iterations"`
	FuncEvals  int     `json:"func_evals"`
	Status     string  `json:"status"`
	// Objective is Σ CE + ‖W‖²/(2C) at the solution (scikit-learn's objective divided by C).
	Objective float64 `json:"objective"`
	// GradInf is the largest |component| of the gradient of Objective/n at the solution.
	GradInf float64 `json:"grad_inf"`
}

// Standardizer holds per-feature statistics of the rows a model is fitted on.
type Standardizer struct{ Mean, Scale []float64 }

// NewStandardizer computes the mean and population standard deviation of the selected rows of
// x ([n, d] row-major); rows nil means all rows. A feature with zero deviation gets scale 1, as in
// scikit-learn's StandardScaler.
func NewStandardizer(x []float32, d int, rows []int) Standardizer {
	mean := make([]float64, d)
	m2 := make([]float64, d)
	count := 0
	// Welford's update keeps the variance accurate when |mean| ≫ std.
	visit := func(r int) {
		count++
		row := x[r*d : (r+1)*d]
		inv := 1 / float64(count)
		for j, v := range row {
			delta := float64(v) - mean[j]
			mean[j] += delta * inv
			m2[j] += delta * (float64(v) - mean[j])
		}
	}
	if rows == nil {
		for r := 0; r < len(x)/d; r++ {
			visit(r)
		}
	} else {
		for _, r := range rows {
			visit(r)
		}
	}
	scale := make([]float64, d)
	for j := range scale {
		s := 0.0
		if count > 0 {
			s = math.Sqrt(m2[j] / float64(count))
		}
		if s == 0 || math.IsNaN(s) {
			s = 1
		}
		scale[j] = s
	}
	return Standardizer{Mean: mean, Scale: scale}
}

// Apply writes the standardised selected rows of x into dst ([len(rows), d]); rows nil means all.
func (s Standardizer) Apply(dst []float64, x []float32, d int, rows []int) {
	put := func(i, r int) {
		src := x[r*d : (r+1)*d]
		out := dst[i*d : (i+1)*d]
		for j, v := range src {
			out[j] = (float64(v) - s.Mean[j]) / s.Scale[j]
		}
	}
	if rows == nil {
		for r := 0; r < len(x)/d; r++ {
			put(r, r)
		}
		return
	}
	for i, r := range rows {
		put(i, r)
	}
}

// objective is the multinomial logistic loss on a standardised design matrix, divided by n.
// Parameters are laid out [W (k·d) | b (k)].
//
// Rows are cut into a fixed number of partitions, each with its own loss and gradient
// accumulator, summed in partition order: the result does not depend on GOMAXPROCS or scheduling.
type objective struct {
	x       []float64 // [n, d]
	n, d, k int
	y       []int
	invC    float64
	z       []float64   // [n, k] logits, then P − Y
	partGW  [][]float64 // per partition [k, d] (+k for the intercept)
	partF   []float64   // per partition summed cross entropy
}

const (
	maxPartitions = 8  // fixed, so sums are reproducible on any machine
	chunkRows     = 32 // rows per fused pass; 32 rows of 1024 float64 stay in L2
)

func newObjective(x []float64, n, d, k int, y []int, c float64) *objective {
	parts := min(maxPartitions, max(1, (n+255)/256))
	o := &objective{x: x, n: n, d: d, k: k, y: y, invC: 1 / c, z: make([]float64, n*k),
		partGW: make([][]float64, parts), partF: make([]float64, parts)}
	for p := range o.partGW {
		o.partGW[p] = make([]float64, k*d+k)
	}
	return o
}

// partition evaluates rows [lo, hi): the summed cross entropy into partF[p] and, if withGrad,
// Σ (P−Y)ᵀ·[X | 1] into partGW[p].
func (o *objective) partition(p, lo, hi int, w, b []float64, withGrad bool) {
	d, k := o.d, o.k
	gw := o.partGW[p]
	if withGrad {
		clear(gw)
	}
	loss := 0.0
	for c0 := lo; c0 < hi; c0 += chunkRows {
		c1 := min(c0+chunkRows, hi)
		x := o.x[c0*d : c1*d]
		z := o.z[c0*k : c1*k]
		rowsTimesWT(z, x, w, c1-c0, d, k)
		for i := c0; i < c1; i++ {
			zi := o.z[i*k : (i+1)*k]
			loss += softmaxMinusOneHot(zi, b, o.y[i])
		}
		if withGrad {
			addGTX(gw[:k*d], z, x, c1-c0, d, k)
			gb := gw[k*d:]
			for i := 0; i < c1-c0; i++ {
				for c, v := range z[i*k : (i+1)*k] {
					gb[c] += v
				}
			}
		}
	}
	o.partF[p] = loss
}

// softmaxMinusOneHot adds the bias to the logits zi, replaces them by softmax − onehot(y), and
// returns the cross entropy logsumexp(z) − z_y computed stably.
func softmaxMinusOneHot(zi, b []float64, y int) float64 {
	mx := math.Inf(-1)
	for c := range zi {
		zi[c] += b[c]
		mx = max(mx, zi[c])
	}
	zy := zi[y] - mx // never the log of an underflowed exp
	sum := 0.0
	for c, v := range zi {
		e := math.Exp(v - mx)
		zi[c] = e
		sum += e
	}
	inv := 1 / sum
	for c := range zi {
		zi[c] *= inv
	}
	zi[y] -= 1
	return math.Log(sum) - zy
}

// eval returns Σ CE/n + ‖W‖²/(2Cn) and, if grad is non-nil, writes its gradient.
func (o *objective) eval(grad, params []float64) float64 {
	n, d, k := o.n, o.d, o.k
	w, b := params[:k*d], params[k*d:]
	parts := len(o.partF)
	workers := min(parts, runtime.GOMAXPROCS(0))
	var next atomic.Int32
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				p := int(next.Add(1)) - 1
				if p >= parts {
					return
				}
				o.partition(p, p*n/parts, (p+1)*n/parts, w, b, grad != nil)
			}
		}()
	}
	wg.Wait()
	loss := 0.0
	for _, v := range o.partF {
		loss += v
	}
	wsq := 0.0
	for _, v := range w {
		wsq += v * v
	}
	invN := 1 / float64(n)
	f := (loss + 0.5*o.invC*wsq) * invN
	if grad == nil {
		return f
	}
	for j := range grad {
		s := 0.0
		for p := range parts {
			s += o.partGW[p][j]
		}
		grad[j] = s * invN
	}
	for j, v := range w {
		grad[j] += v * o.invC * invN
	}
	return f
}

// FitStandardized fits weights on an already standardised matrix x ([n, d], float64). init, if
// non-nil, is a warm start laid out [W (k·d) | b (k)]. It returns the parameters in that layout.
func FitStandardized(x []float64, n, d, k int, y []int, c float64, init []float64, opt FitOptions) ([]float64, FitInfo, error) {
	info := FitInfo{C: c}
	if !(c > 0) || math.IsInf(c, 0) {
		return nil, info, fmt.Errorf("linear: C must be positive and finite, got %v", c)
	}
	if n == 0 {
		return nil, info, errors.New("linear: no training rows")
	}
	if len(x) != n*d || len(y) != n || k < 2 {
		return nil, info, fmt.Errorf("linear: fit: %d values and %d labels for %d rows × %d features, %d classes", len(x), len(y), n, d, k)
	}
	for i, c := range y {
		if c < 0 || c >= k {
			return nil, info, fmt.Errorf("linear: fit: row %d has label %d outside [0, %d)", i, c, k)
		}
	}
	if opt.MaxIter <= 0 {
		opt.MaxIter = 1000
	}
	if opt.Tol <= 0 {
		opt.Tol = 1e-5
	}
	obj := newObjective(x, n, d, k, y, c)
	np := k*d + k
	// gonum asks for the value and the gradient at the same point separately; compute both once.
	lastX := make([]float64, np)
	lastG := make([]float64, np)
	lastF := math.NaN()
	valid := false
	both := func(p []float64) {
		if valid && slices.Equal(p, lastX) {
			return
		}
		lastF = obj.eval(lastG, p)
		copy(lastX, p)
		valid = true
	}
	problem := optimize.Problem{
		Func: func(p []float64) float64 { both(p); return lastF },
		Grad: func(g, p []float64) { both(p); copy(g, lastG) },
	}
	x0 := make([]float64, np)
	if init != nil {
		copy(x0, init)
	}
	settings := &optimize.Settings{
		GradientThreshold: opt.Tol,
		MajorIterations:   opt.MaxIter,
		Converger:         &optimize.FunctionConverge{Absolute: 1e-15, Relative: 1e-13, Iterations: 20},
	}
	res, err := optimize.Minimize(problem, x0, settings, &optimize.LBFGS{Store: 20})
	if res == nil {
		return nil, info, fmt.Errorf("linear: L-BFGS failed for C=%g: %w", c, err)
	}
	info.Iterations = res.MajorIterations
	info.FuncEvals = res.FuncEvaluations
	info.Status = res.Status.String()
	if err != nil {
		// A line search that can make no more progress ends at the best point found; near the
		// optimum this is round-off, so keep the point and record the reason.
		info.Status += ": " + err.Error()
	}
	params := res.X
	both(params) // usually cached: the last point gonum evaluated
	f, g := lastF, lastG
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, info, fmt.Errorf("linear: objective is %v at the solution for C=%g", f, c)
	}
	info.Objective = f * float64(n)
	for _, v := range g {
		info.GradInf = max(info.GradInf, math.Abs(v))
	}
	return params, info, nil
}

// Fit standardises the selected rows of x ([n, d] float32, rows nil = all) with their own
// statistics and fits a model with the given C. y is indexed like x (y[r] for row r).
func Fit(x []float32, d int, rows []int, y []int, k int, c float64, opt FitOptions) (*Model, FitInfo, error) {
	m, _, info, err := fitRows(x, d, rows, y, k, c, nil, opt)
	return m, info, err
}

// fitRows is Fit with a warm start, also returning the raw parameter vector for the next warm start.
func fitRows(x []float32, d int, rows []int, y []int, k int, c float64, init []float64, opt FitOptions) (*Model, []float64, FitInfo, error) {
	if rows == nil {
		rows = make([]int, len(x)/d)
		for i := range rows {
			rows[i] = i
		}
	}
	st := NewStandardizer(x, d, rows)
	xs := make([]float64, len(rows)*d)
	st.Apply(xs, x, d, rows)
	ys := make([]int, len(rows))
	for i, r := range rows {
		ys[i] = y[r]
	}
	params, info, err := FitStandardized(xs, len(rows), d, k, ys, c, init, opt)
	if err != nil {
		return nil, nil, info, err
	}
	m := &Model{Classes: k, Dim: d, Mean: st.Mean, Scale: st.Scale,
		W: slices.Clone(params[:k*d]), B: slices.Clone(params[k*d:])}
	return m, params, info, nil
}

// LogProbabilities writes log-softmax class scores for the selected rows of x into dst
// ([len(rows), K]); rows nil means all rows.
func (m *Model) LogProbabilities(dst []float64, x []float32, rows []int) {
	d, k := m.Dim, m.Classes
	if rows == nil {
		rows = make([]int, len(x)/d)
		for i := range rows {
			rows[i] = i
		}
	}
	// Standardise in chunks so memory stays bounded for large inputs.
	const chunk = 1024
	buf := make([]float64, min(chunk, len(rows))*d)
	st := Standardizer{Mean: m.Mean, Scale: m.Scale}
	for lo := 0; lo < len(rows); lo += chunk {
		hi := min(lo+chunk, len(rows))
		st.Apply(buf, x, d, rows[lo:hi])
		out := dst[lo*k : hi*k]
		rowsTimesWT(out, buf, m.W, hi-lo, d, k)
		for i := 0; i < hi-lo; i++ {
			logSoftmaxInPlace(out[i*k:(i+1)*k], m.B)
		}
	}
}

// logSoftmaxInPlace adds bias to z and replaces it by its log-softmax, stably.
func logSoftmaxInPlace(z, bias []float64) {
	mx := math.Inf(-1)
	for c := range z {
		z[c] += bias[c]
		mx = max(mx, z[c])
	}
	sum := 0.0
	for _, v := range z {
		sum += math.Exp(v - mx)
	}
	lse := mx + math.Log(sum)
	for c := range z {
		z[c] -= lse
	}
}

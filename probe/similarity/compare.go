package similarity

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/perceiverkit/perceiver/internal/par"
)

// Method names a similarity measure.
type Method string

// The measures (see the package documentation for their definitions).
const (
	CKA         Method = "cka"
	DebiasedCKA Method = "cka-debiased"
	RBFCKA      Method = "cka-rbf"
	RSA         Method = "rsa"
)

// Methods lists the measures in the order of the documentation.
var Methods = []Method{CKA, DebiasedCKA, RBFCKA, RSA}

// NeedsGram reports whether the method builds n×n matrices (O(n²) memory and time).
func (m Method) NeedsGram() bool { return m == RBFCKA || m == RSA }

// Representation is one matrix of features over the rows being compared.
type Representation struct {
	Name string
	Data []float32 // [n, Dim] row-major
	Dim  int
}

// Rows returns the number of rows of r (0 when Dim is not positive).
func (r Representation) Rows() int {
	if r.Dim <= 0 {
		return 0
	}
	return len(r.Data) / r.Dim
}

// Options configures Compare. Zero values select the defaults noted.
type Options struct {
	Method       Method  // "" means DebiasedCKA
	RBFThreshold float64 // RBF CKA bandwidth as a multiple of the median distance; 0 means 1
	RDM          string  // RSA dissimilarity: correlation (default), cosine, euclidean
	Compare      string  // RSA statistic: spearman (default), pearson, kendall
	Permutations int     // permutation test size; 0 means none
	Seed         uint64  // seeds the permutations
	// InPlace lets Compare overwrite the Representations' Data (centring them), instead of
	// working on copies: half the memory for large inputs.
	InPlace bool
	// Progress, if not nil, is called after each pair with the number of pairs done and the
	// total.
	Progress func(done, total int)
}

func (o Options) withDefaults() Options {
	if o.Method == "" {
		o.Method = DebiasedCKA
	}
	if o.RBFThreshold == 0 {
		o.RBFThreshold = 1
	}
	if o.RDM == "" {
		o.RDM = RDMCorrelation
	}
	if o.Compare == "" {
		o.Compare = CompareSpearman
	}
	return o
}

// Result is a matrix of similarities: Matrix[i][j] compares Columns[i] with AgainstColumns[j].
type Result struct {
	Method         Method      `json:"method"`
	Columns        []string    `json:"columns"`
	AgainstColumns []string    `json:"against_columns"`
	N              int         `json:"n"` // rows compared
	Matrix         [][]float64 `json:"matrix"`
	// PValues are the one-sided permutation p-values, nil without permutations.
	PValues      [][]float64 `json:"p_values,omitempty"`
	Permutations int         `json:"permutations,omitempty"`
	Seed         uint64      `json:"seed"`
	RBFThreshold float64     `json:"rbf_threshold,omitempty"` // cka-rbf
	// Bandwidths σ of the RBF kernels (cka-rbf) of Columns and AgainstColumns.
	Bandwidths        []float64 `json:"rbf_bandwidths,omitempty"`
	AgainstBandwidths []float64 `json:"against_rbf_bandwidths,omitempty"`
	RDM               string    `json:"rdm,omitempty"`     // rsa
	Compare           string    `json:"compare,omitempty"` // rsa
}

// MarshalJSON writes NaN (an undefined similarity) as null.
func (r *Result) MarshalJSON() ([]byte, error) {
	type plain Result
	nullable := func(m [][]float64) [][]*float64 {
		if m == nil {
			return nil
		}
		out := make([][]*float64, len(m))
		for i, row := range m {
			out[i] = make([]*float64, len(row))
			for j, v := range row {
				if !math.IsNaN(v) && !math.IsInf(v, 0) {
					out[i][j] = &row[j]
				}
			}
		}
		return out
	}
	return json.Marshal(struct {
		*plain
		Matrix  [][]*float64 `json:"matrix"`
		PValues [][]*float64 `json:"p_values,omitempty"`
	}{(*plain)(r), nullable(r.Matrix), nullable(r.PValues)})
}

// Compare computes the similarity of every representation in a with every one in b. With b nil,
// a is compared with itself: each unordered pair is computed once and the matrix is symmetric.
// Errors name the representation at fault.
func Compare(a, b []Representation, opt Options) (*Result, error) {
	opt = opt.withDefaults()
	self := b == nil
	if self {
		b = a
	}
	if len(a) == 0 || len(b) == 0 {
		return nil, errors.New("similarity: no representations to compare")
	}
	n := a[0].Rows()
	for _, r := range slices.Concat(a, b) {
		if err := r.validate(n); err != nil {
			return nil, err
		}
	}
	switch opt.Method {
	case CKA, RBFCKA:
		if n < 2 {
			return nil, fmt.Errorf("similarity: %s needs at least 2 rows, have %d", opt.Method, n)
		}
	case DebiasedCKA:
		if n < 4 {
			return nil, fmt.Errorf("similarity: %s needs at least 4 rows, have %d", opt.Method, n)
		}
	case RSA:
		if n < 3 {
			return nil, fmt.Errorf("similarity: %s needs at least 3 rows, have %d", opt.Method, n)
		}
		if opt.RDM != RDMCorrelation && opt.RDM != RDMCosine && opt.RDM != RDMEuclidean {
			return nil, fmt.Errorf("similarity: rdm %q: want correlation, cosine or euclidean", opt.RDM)
		}
		if opt.Compare != CompareSpearman && opt.Compare != ComparePearson && opt.Compare != CompareKendall {
			return nil, fmt.Errorf("similarity: compare %q: want spearman, pearson or kendall", opt.Compare)
		}
	default:
		return nil, fmt.Errorf("similarity: method %q: want cka, cka-debiased, cka-rbf or rsa", opt.Method)
	}
	if opt.Permutations < 0 {
		return nil, fmt.Errorf("similarity: %d permutations: must be ≥ 0", opt.Permutations)
	}
	if opt.RBFThreshold <= 0 || math.IsInf(opt.RBFThreshold, 0) || math.IsNaN(opt.RBFThreshold) {
		return nil, fmt.Errorf("similarity: RBF threshold %v: must be positive", opt.RBFThreshold)
	}

	res := &Result{Method: opt.Method, N: n, Permutations: opt.Permutations, Seed: opt.Seed}
	for _, r := range a {
		res.Columns = append(res.Columns, r.Name)
	}
	for _, r := range b {
		res.AgainstColumns = append(res.AgainstColumns, r.Name)
	}
	switch opt.Method {
	case RBFCKA:
		res.RBFThreshold = opt.RBFThreshold
	case RSA:
		res.RDM, res.Compare = opt.RDM, opt.Compare
	}

	// Prepare each distinct representation once.
	reps := slices.Clone(a)
	if !self {
		reps = append(reps, b...)
	}
	prep := make([]prepared, len(reps))
	for i, r := range reps {
		p, err := prepare(r, opt)
		if err != nil {
			return nil, fmt.Errorf("similarity: %s: %w", r.Name, err)
		}
		prep[i] = p
	}
	bIndex := func(j int) int {
		if self {
			return j
		}
		return len(a) + j
	}
	// Self-statistics: the normalisers of CKA.
	if opt.Method != RSA {
		for i := range prep {
			prep[i].self = prep[i].stat(&prep[i], nil, opt.Method)
		}
	}
	if opt.Method == RBFCKA {
		for i := range a {
			res.Bandwidths = append(res.Bandwidths, prep[i].rbf.bw)
		}
		for j := range b {
			res.AgainstBandwidths = append(res.AgainstBandwidths, prep[bIndex(j)].rbf.bw)
		}
	}

	perms := permutations(n, opt.Permutations, opt.Seed)
	res.Matrix = newMatrix(len(a), len(b))
	if len(perms) > 0 {
		res.PValues = newMatrix(len(a), len(b))
	}
	total := len(a) * len(b)
	if self {
		total = len(a) * (len(a) + 1) / 2
	}
	done := 0
	for i := range a {
		for j := range b {
			if self && j < i {
				res.Matrix[i][j] = res.Matrix[j][i]
				if res.PValues != nil {
					res.PValues[i][j] = res.PValues[j][i]
				}
				continue
			}
			x, y := &prep[i], &prep[bIndex(j)]
			var s float64
			if self && i == j && opt.Method != RSA {
				s = x.self
			} else {
				s = x.stat(y, nil, opt.Method)
			}
			res.Matrix[i][j] = x.normalise(s, y, opt.Method)
			if len(perms) > 0 {
				obs := res.Matrix[i][j]
				hits := 0
				for _, p := range perms {
					v := x.normalise(x.stat(y, p, opt.Method), y, opt.Method)
					if v >= obs {
						hits++
					}
				}
				res.PValues[i][j] = math.NaN()
				if !math.IsNaN(obs) {
					res.PValues[i][j] = float64(1+hits) / float64(len(perms)+1)
				}
			}
			done++
			if opt.Progress != nil {
				opt.Progress(done, total)
			}
		}
	}
	return res, nil
}

func newMatrix(r, c int) [][]float64 {
	m := make([][]float64, r)
	for i := range m {
		m[i] = make([]float64, c)
	}
	return m
}

func (r Representation) validate(n int) error {
	switch {
	case r.Dim <= 0:
		return fmt.Errorf("similarity: %s: dimension %d", r.Name, r.Dim)
	case len(r.Data)%r.Dim != 0:
		return fmt.Errorf("similarity: %s: %d values are not whole rows of %d", r.Name, len(r.Data), r.Dim)
	case r.Rows() != n:
		return fmt.Errorf("similarity: %s: %d rows, want %d like the first representation", r.Name, r.Rows(), n)
	}
	// v − v is NaN exactly for NaN and ±Inf; rows are scanned in parallel, the first bad one
	// reported.
	bad := make([]int, r.Rows())
	par.For(len(bad), 256, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			bad[i] = -1
			for j, v := range r.Data[i*r.Dim : (i+1)*r.Dim] {
				if z := v - v; z != z {
					bad[i] = j
					break
				}
			}
		}
	})
	for i, j := range bad {
		if j >= 0 {
			return fmt.Errorf("similarity: %s: row %d feature %d is %v", r.Name, i, j, r.Data[i*r.Dim+j])
		}
	}
	return nil
}

// prepared is a representation in the form its method compares.
type prepared struct {
	c    *centred   // cka, cka-debiased
	rbf  *rbfGram   // cka-rbf
	rsa  *rsaVector // rsa
	self float64    // the statistic of the representation with itself
}

func prepare(r Representation, opt Options) (prepared, error) {
	n := r.Rows()
	switch opt.Method {
	case CKA, DebiasedCKA, RBFCKA:
		dst := r.Data
		if !opt.InPlace {
			dst = make([]float32, len(r.Data))
		}
		c := centre(dst, r.Data, n, r.Dim, opt.Method != RBFCKA)
		if opt.Method == RBFCKA {
			return prepared{rbf: newRBFGram(c, opt.RBFThreshold)}, nil
		}
		return prepared{c: c}, nil
	default:
		rdm, err := upperRDM(r.Data, n, r.Dim, opt.RDM, opt.InPlace)
		if err != nil {
			return prepared{}, err
		}
		v, err := newRSAVector(rdm, n, opt.Compare)
		return prepared{rsa: v}, err
	}
}

// stat is the unnormalised statistic of x against y with y's rows permuted by perm (nil: none):
// the HSIC-type numerator for CKA, the RSA correlation itself.
func (x *prepared) stat(y *prepared, perm []int, m Method) float64 {
	switch m {
	case CKA, DebiasedCKA:
		a, b := x.c, y.c
		yx := b.x
		if perm != nil { // permute the rows of Y: the columns of the stored Yᵀ
			yx = make([]float32, len(b.x))
			par.For(b.d, 16, func(lo, hi int) {
				for j := lo; j < hi; j++ {
					src, dst := b.x[j*b.n:(j+1)*b.n], yx[j*b.n:(j+1)*b.n]
					for i, p := range perm {
						dst[i] = src[p]
					}
				}
			})
		}
		var f float64
		if x == y && perm == nil {
			f = selfProduct(a.x, a.n, a.d, make([]float32, a.d*a.d))
		} else {
			f = crossProduct(a.x, yx, a.n, a.d, b.d, make([]float32, a.d*b.d))
		}
		if m == CKA {
			return hsicLinear(f)
		}
		return hsicUnbiased(f, a, b, perm)
	case RBFCKA:
		return gramInner(x.rbf.kc, y.rbf.kc, x.rbf.n, perm)
	default:
		return rsaStat(x.rsa, y.rsa, perm)
	}
}

// normalise turns a statistic into the reported similarity.
func (x *prepared) normalise(s float64, y *prepared, m Method) float64 {
	if m == RSA {
		return s
	}
	return ratio(s, x.self, y.self)
}

// permutations draws count permutations of n rows from a PCG seeded by seed (Fisher–Yates).
func permutations(n, count int, seed uint64) [][]int {
	if count == 0 {
		return nil
	}
	rng := rand.New(rand.NewPCG(seed, 0x5851f42d4c957f2d))
	out := make([][]int, count)
	for k := range out {
		p := make([]int, n)
		for i := range p {
			p[i] = i
		}
		for i := n - 1; i > 0; i-- {
			j := rng.IntN(i + 1)
			p[i], p[j] = p[j], p[i]
		}
		out[k] = p
	}
	return out
}

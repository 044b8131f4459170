package similarity

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

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
	MutualKNN   Method = "mutual-knn"
	CKNNA       Method = "cknna"
	SVCCA       Method = "svcca"
	Procrustes  Method = "procrustes"
	AngularCKA  Method = "cka-angular"
)

// Methods lists the measures in the order of the documentation.
var Methods = []Method{CKA, DebiasedCKA, RBFCKA, RSA, MutualKNN, CKNNA, SVCCA, Procrustes, AngularCKA}

// MethodNames is Methods as a phrase for messages: "cka, cka-debiased, … or cka-angular".
func MethodNames() string {
	var b strings.Builder
	for i, m := range Methods {
		switch {
		case i == len(Methods)-1:
			b.WriteString(" or ")
		case i > 0:
			b.WriteString(", ")
		}
		b.WriteString(string(m))
	}
	return b.String()
}

// NeedsGram reports whether the method builds n×n matrices (O(n²) memory and time).
func (m Method) NeedsGram() bool { return m == RBFCKA || m == RSA }

// Quadratic reports whether the method's time grows with n² (it compares every pair of rows),
// whether or not it holds an n×n matrix: the Gram methods and the kNN methods.
func (m Method) Quadratic() bool { return m.NeedsGram() || m.UsesKNN() }

// UsesKNN reports whether the method compares nearest-neighbour graphs (mutual-knn, cknna).
func (m Method) UsesKNN() bool { return m == MutualKNN || m == CKNNA }

// Distance reports whether the method is a distance (radians in [0, π/2], smaller = more
// similar) rather than a similarity.
func (m Method) Distance() bool { return m == Procrustes || m == AngularCKA }

// MinRows is the smallest number of rows the method accepts with options o: K+1 for the kNN
// methods (K neighbours besides each row itself), 4 for the new measures and the unbiased HSIC.
func (m Method) MinRows(o Options) int {
	o = o.withDefaults()
	switch m {
	case CKA, RBFCKA:
		return 2
	case RSA:
		return 3
	case MutualKNN:
		return o.KNNK + 1
	case CKNNA:
		return max(4, o.KNNK+1)
	}
	return 4
}

// Representation is one matrix of features over the rows being compared.
type Representation struct {
	Name string
	Data []float32 // [n, Dim] row-major
	Dim  int
	// Exact, when not nil, holds the values in float64 as a float64 source stored them (Data
	// holds them rounded). The kNN methods and SVCCA read it; the others use Data.
	Exact []float64
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
	Permutations int     // permutation test size; 0 means none (cka, cka-debiased, cka-rbf, rsa only)
	KNNK         int     // mutual-knn, cknna: neighbours per row; 0 means 10
	SVCCADims    int     // svcca: singular directions kept per side; 0 means 10
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
	if o.KNNK == 0 {
		o.KNNK = 10
	}
	if o.SVCCADims == 0 {
		o.SVCCADims = 10
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
	KNNK              int       `json:"knn_k,omitempty"`   // mutual-knn, cknna
	SVCCADims         int       `json:"svcca_dims,omitempty"`
	// Distance is set for the distances (procrustes, cka-angular): radians in [0, π/2], smaller
	// = more similar.
	Distance bool   `json:"distance"`
	Units    string `json:"units,omitempty"`
	// KNNRecomputed counts, per representation (Columns then AgainstColumns; a self-comparison
	// lists Columns once), the rows whose neighbours the float32 screening could not decide and
	// that were searched in full in float64.
	KNNRecomputed []int `json:"knn_recomputed_rows,omitempty"`
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
	if !slices.Contains(Methods, opt.Method) {
		return nil, fmt.Errorf("similarity: method %q: want %s", opt.Method, MethodNames())
	}
	if opt.KNNK < 1 {
		return nil, fmt.Errorf("similarity: K = %d neighbours: must be ≥ 1", opt.KNNK)
	}
	if opt.Method == CKNNA && opt.KNNK < 2 {
		return nil, fmt.Errorf("similarity: cknna needs K ≥ 2 neighbours, have %d", opt.KNNK)
	}
	if opt.SVCCADims < 1 {
		return nil, fmt.Errorf("similarity: %d SVCCA dimensions: must be ≥ 1", opt.SVCCADims)
	}
	if need := opt.Method.MinRows(opt); n < need {
		if opt.Method.UsesKNN() {
			return nil, fmt.Errorf("similarity: %s with K = %d needs at least %d rows, have %d", opt.Method, opt.KNNK, need, n)
		}
		return nil, fmt.Errorf("similarity: %s needs at least %d rows, have %d", opt.Method, need, n)
	}
	if opt.Method == RSA {
		if opt.RDM != RDMCorrelation && opt.RDM != RDMCosine && opt.RDM != RDMEuclidean {
			return nil, fmt.Errorf("similarity: rdm %q: want correlation, cosine or euclidean", opt.RDM)
		}
		if opt.Compare != CompareSpearman && opt.Compare != ComparePearson && opt.Compare != CompareKendall {
			return nil, fmt.Errorf("similarity: compare %q: want spearman, pearson or kendall", opt.Compare)
		}
	}
	if opt.Permutations > 0 && !opt.Method.permutable() {
		return nil, fmt.Errorf("similarity: permutation tests are available for cka, cka-debiased, cka-rbf and rsa, not %s", opt.Method)
	}
	if opt.Permutations < 0 {
		return nil, fmt.Errorf("similarity: %d permutations: must be ≥ 0", opt.Permutations)
	}
	if opt.RBFThreshold <= 0 || math.IsInf(opt.RBFThreshold, 0) || math.IsNaN(opt.RBFThreshold) {
		return nil, fmt.Errorf("similarity: RBF threshold %v: must be positive", opt.RBFThreshold)
	}

	res := &Result{Method: opt.Method, N: n, Permutations: opt.Permutations, Seed: opt.Seed, Distance: opt.Method.Distance()}
	if res.Distance {
		res.Units = "radians"
	}
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
	case MutualKNN, CKNNA:
		res.KNNK = opt.KNNK
	case SVCCA:
		res.SVCCADims = opt.SVCCADims
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
		if p.knn != nil {
			res.KNNRecomputed = append(res.KNNRecomputed, p.knn.recomputed)
		}
	}
	bIndex := func(j int) int {
		if self {
			return j
		}
		return len(a) + j
	}
	// Self-statistics: the normalisers of CKA and CKNNA.
	if opt.Method.selfNormalised() {
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
	// CKNNA is not symmetric (its masks are row-wise and its HSIC pairs Ã with B̃ᵀ): every
	// ordered pair is computed.
	mirror := self && opt.Method != CKNNA
	total := len(a) * len(b)
	if mirror {
		total = len(a) * (len(a) + 1) / 2
	}
	done := 0
	for i := range a {
		for j := range b {
			if mirror && j < i {
				res.Matrix[i][j] = res.Matrix[j][i]
				if res.PValues != nil {
					res.PValues[i][j] = res.PValues[j][i]
				}
				continue
			}
			x, y := &prep[i], &prep[bIndex(j)]
			var s float64
			if self && i == j && opt.Method.selfNormalised() {
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
	case r.Exact != nil && len(r.Exact) != len(r.Data):
		return fmt.Errorf("similarity: %s: %d exact values for %d values", r.Name, len(r.Exact), len(r.Data))
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
	c     *centred    // cka, cka-debiased, cka-angular, procrustes
	rbf   *rbfGram    // cka-rbf
	rsa   *rsaVector  // rsa
	knn   *knnGraph   // mutual-knn, cknna
	svcca *svccaBasis // svcca
	self  float64     // the statistic of the representation with itself
}

// selfNormalised reports whether the method divides by the representations' self-statistics.
func (m Method) selfNormalised() bool {
	return m == CKA || m == DebiasedCKA || m == RBFCKA || m == AngularCKA || m == CKNNA
}

// permutable reports whether Options.Permutations applies to the method.
func (m Method) permutable() bool {
	return m == CKA || m == DebiasedCKA || m == RBFCKA || m == RSA
}

func prepare(r Representation, opt Options) (prepared, error) {
	n := r.Rows()
	switch opt.Method {
	case CKA, DebiasedCKA, RBFCKA, AngularCKA, Procrustes:
		dst := r.Data
		if !opt.InPlace {
			dst = make([]float32, len(r.Data))
		}
		c := centre(dst, r.Data, n, r.Dim, opt.Method != RBFCKA)
		if opt.Method == RBFCKA {
			return prepared{rbf: newRBFGram(c, opt.RBFThreshold)}, nil
		}
		return prepared{c: c}, nil
	case MutualKNN, CKNNA:
		return prepared{knn: buildKNN(r, opt.KNNK)}, nil
	case SVCCA:
		return prepared{svcca: newSVCCABasis(r, opt.SVCCADims)}, nil
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
// the HSIC-type numerator for CKA and CKNNA, the measure itself for the others.
func (x *prepared) stat(y *prepared, perm []int, m Method) float64 {
	switch m {
	case CKA, DebiasedCKA, AngularCKA:
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
		if m == DebiasedCKA {
			return hsicUnbiased(f, a, b, perm)
		}
		return hsicLinear(f)
	case RBFCKA:
		return gramInner(x.rbf.kc, y.rbf.kc, x.rbf.n, perm)
	case MutualKNN:
		return mutualKNN(x.knn, y.knn)
	case CKNNA:
		return maskedKernels(x.knn, y.knn).hsic()
	case SVCCA:
		return svccaScore(x.svcca, y.svcca)
	case Procrustes:
		return procrustesAngle(x.c, y.c)
	default:
		return rsaStat(x.rsa, y.rsa, perm)
	}
}

// normalise turns a statistic into the reported value.
func (x *prepared) normalise(s float64, y *prepared, m Method) float64 {
	switch m {
	case CKA, DebiasedCKA, RBFCKA:
		return ratio(s, x.self, y.self)
	case AngularCKA:
		// arccos of exactly the value --method cka reports.
		return math.Acos(math.Max(-1, math.Min(1, ratio(s, x.self, y.self))))
	case CKNNA:
		return cknnaScore(s, x.self, y.self)
	}
	return s
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

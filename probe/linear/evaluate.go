package linear

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// Dataset is one feature column with its labels.
type Dataset struct {
	X       []float32 // [N, D] row-major
	N, D    int
	Y       []int    // [N] class indices into Classes
	Classes []string // class names
	Split   []string // optional [N] "train" / "val" / "test"; nil for a seeded stratified split
}

// Config is the probe protocol. Zero values select the defaults noted.
type Config struct {
	Cs       []float64  `json:"Cs"`        // inverse L2 strengths to try; nil means DefaultCs, 1e-6 … 1e6
	Folds    int        `json:"folds"`     // ≥ 2: choose C by stratified K-fold on train+val; otherwise on the val split
	ValFrac  float64    `json:"val_frac"`  // stratified split fractions when there is no split column; 0 means 0.1
	TestFrac float64    `json:"test_frac"` // 0 means 0.2
	Seed     uint64     `json:"seed"`      // seeds the stratified split and the folds
	MaxIter  int        `json:"max_iter"`  // L-BFGS iterations per fit; 0 means 1000
	Tol      float64    `json:"tol"`       // gradient tolerance of the per-sample objective; 0 means 1e-5
	KNN      KNNOptions `json:"knn"`
	NoKNN    bool       `json:"no_knn"` // skip the kNN baseline
	// Shots lists few-shot sizes: for each k, k train rows per class are drawn (Seeds times),
	// a probe is fitted on them (C chosen on the val split as in the full protocol, or the full
	// protocol's C with K-fold) and scored on test; mean ± sd over the draws.
	Shots []int `json:"shots,omitempty"`
	Seeds int   `json:"seeds,omitempty"` // draws per shot count; 0 means 5
	// Bootstrap > 0 resamples the test rows that many times for a 95% percentile interval of
	// the test top-1.
	Bootstrap int `json:"bootstrap,omitempty"`
	// LayersPerBlock places block{b} columns among layer{j} ones in the depth order (see Depth);
	// 0 means DefaultLayersPerBlock.
	LayersPerBlock int `json:"layers_per_block"`
}

// DefaultCs is the grid tried when Config.Cs is empty: CLIP's sweep, 1e-6 … 1e6 in decades. Fits
// run from strong to weak regularisation, each warm-started from the previous solution, so the
// weak end costs few iterations.
var DefaultCs = []float64{1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1, 10, 100, 1e3, 1e4, 1e5, 1e6}

// WithDefaults returns cfg with its zero values replaced by the defaults.
func (cfg Config) WithDefaults() Config {
	if len(cfg.Cs) == 0 {
		cfg.Cs = slices.Clone(DefaultCs)
	}
	if cfg.ValFrac == 0 {
		cfg.ValFrac = 0.1
	}
	if cfg.TestFrac == 0 {
		cfg.TestFrac = 0.2
	}
	if cfg.MaxIter == 0 {
		cfg.MaxIter = 1000
	}
	if cfg.Tol == 0 {
		cfg.Tol = 1e-5
	}
	cfg.KNN = cfg.KNN.withDefaults()
	if len(cfg.Shots) > 0 && cfg.Seeds == 0 {
		cfg.Seeds = 5
	}
	if cfg.LayersPerBlock == 0 {
		cfg.LayersPerBlock = DefaultLayersPerBlock
	}
	return cfg
}

// CScore is the selection score of one C.
type CScore struct {
	C          float64   `json:"C"`
	ValTop1    float64   `json:"val_top1"`     // mean over folds with K-fold
	ValLogLoss float64   `json:"val_log_loss"` // mean over folds with K-fold
	Fits       []FitInfo `json:"fits"`         // one per fold (one without folds)
}

// Durations of the stages of one evaluation.
type Durations struct {
	Select time.Duration `json:"select_ns"`
	Refit  time.Duration `json:"refit_ns"`
	KNN    time.Duration `json:"knn_ns"`
	Total  time.Duration `json:"total_ns"`
}

// Result is the evaluation of one column.
type Result struct {
	Column    string   `json:"column"`
	Dim       int      `json:"dim"`
	Classes   []string `json:"classes"`
	SplitFrom string   `json:"split_from"` // "column", "stratified"
	NTrain    int      `json:"n_train"`
	NVal      int      `json:"n_val"`
	NTest     int      `json:"n_test"`
	BestC     float64  `json:"best_C"`
	ByC       []CScore `json:"by_C"`
	Refit     FitInfo  `json:"refit"`      // the final fit on train+val
	TrainTop1 float64  `json:"train_top1"` // accuracy of the final fit on train+val
	Test      Metrics  `json:"test"`
	KNN       *Metrics `json:"knn,omitempty"` // nil when disabled; the first of KNNByK
	// KNNByK scores every k of KNNOptions.Ks, in that order.
	KNNByK []KNNScore `json:"knn_by_k,omitempty"`
	// TestTop1CI95 is the bootstrap 95% percentile interval of Test.Top1 (Config.Bootstrap).
	TestTop1CI95 *[2]float64     `json:"test_top1_ci95,omitempty"`
	FewShot      []FewShotResult `json:"few_shot,omitempty"`
	Durations    Durations       `json:"durations"`
}

// KNNScore is the kNN baseline at one k. K is what was asked; it is capped at the bank size
// (EffectiveK) when the bank is smaller.
type KNNScore struct {
	K          int     `json:"k"`
	EffectiveK int     `json:"effective_k"`
	Metrics    Metrics `json:"metrics"`
}

// FewShotResult summarises the draws at one shot count: mean and sample standard deviation over
// the draws (NaN for a single draw) of the test top-1 and balanced accuracy.
type FewShotResult struct {
	Shots          int       `json:"shots"`         // train rows per class asked for
	MinPerClass    int       `json:"min_per_class"` // fewest drawn for a class (< Shots when a class is short)
	Top1Mean       float64   `json:"top1_mean"`
	Top1SD         jsonFloat `json:"top1_sd"`
	BalancedMean   float64   `json:"balanced_mean"`
	BalancedSD     jsonFloat `json:"balanced_sd"`
	Top1           []float64 `json:"top1"`            // per draw
	C              []float64 `json:"C"`               // chosen per draw
	Seeds          int       `json:"seeds"`           // draws
	SelectionSplit string    `json:"selection_split"` // "val", or "full-protocol C" with K-fold
}

// Validate checks shapes, labels and values; errors name the column.
func (ds *Dataset) Validate(column string) error {
	switch {
	case ds.N <= 0 || ds.D <= 0:
		return fmt.Errorf("linear: column %q: empty features (%d rows × %d)", column, ds.N, ds.D)
	case len(ds.X) != ds.N*ds.D:
		return fmt.Errorf("linear: column %q: %d values, want %d rows × %d = %d", column, len(ds.X), ds.N, ds.D, ds.N*ds.D)
	case len(ds.Y) != ds.N:
		return fmt.Errorf("linear: column %q: %d labels for %d rows", column, len(ds.Y), ds.N)
	case ds.Split != nil && len(ds.Split) != ds.N:
		return fmt.Errorf("linear: column %q: %d split values for %d rows", column, len(ds.Split), ds.N)
	case len(ds.Classes) < 2:
		return fmt.Errorf("linear: column %q: need at least 2 classes, have %d", column, len(ds.Classes))
	}
	for i, c := range ds.Y {
		if c < 0 || c >= len(ds.Classes) {
			return fmt.Errorf("linear: column %q: row %d has label %d outside [0, %d)", column, i, c, len(ds.Classes))
		}
	}
	for i, v := range ds.X {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("linear: column %q: row %d feature %d is %v", column, i/ds.D, i%ds.D, v)
		}
	}
	return nil
}

// splits resolves the train/val/test rows and says where they came from.
func (ds *Dataset) splits(column string, cfg Config) (Splits, string, error) {
	var s Splits
	from := "stratified"
	if ds.Split != nil {
		var err error
		if s, err = SplitsFromColumn(ds.Split); err != nil {
			return Splits{}, "", fmt.Errorf("linear: column %q: split %w", column, err)
		}
		from = "column"
		if len(s.Val) == 0 && cfg.Folds < 2 {
			// No validation rows given: carve them from train, stratified and seeded.
			sub := make([]int, len(s.Train))
			for i, r := range s.Train {
				sub[i] = ds.Y[r]
			}
			inner := StratifiedSplit(sub, len(ds.Classes), cfg.ValFrac, 0, cfg.Seed)
			train, val := make([]int, len(inner.Train)), make([]int, len(inner.Val))
			for i, j := range inner.Train {
				train[i] = s.Train[j]
			}
			for i, j := range inner.Val {
				val[i] = s.Train[j]
			}
			s.Train, s.Val = train, val
			from = "column+stratified val"
		}
	} else {
		if cfg.ValFrac < 0 || cfg.TestFrac < 0 || cfg.ValFrac+cfg.TestFrac >= 1 {
			return Splits{}, "", fmt.Errorf("linear: val fraction %g and test fraction %g must be ≥ 0 and sum below 1", cfg.ValFrac, cfg.TestFrac)
		}
		valFrac := cfg.ValFrac
		if cfg.Folds >= 2 {
			valFrac = 0 // K-fold runs on train+val; a separate val part would go unused
		}
		s = StratifiedSplit(ds.Y, len(ds.Classes), valFrac, cfg.TestFrac, cfg.Seed)
	}
	switch {
	case len(s.Train) == 0:
		return Splits{}, "", fmt.Errorf("linear: column %q: empty train split", column)
	case len(s.Test) == 0:
		return Splits{}, "", fmt.Errorf("linear: column %q: empty test split", column)
	case len(s.Val) == 0 && cfg.Folds < 2:
		return Splits{}, "", fmt.Errorf("linear: column %q: empty val split (use more rows, a larger val fraction, or folds)", column)
	}
	if n := countClasses(ds.Y, s.Train); n < 2 {
		return Splits{}, "", fmt.Errorf("linear: column %q: the train split has %d class(es); need at least 2", column, n)
	}
	return s, from, nil
}

func countClasses(y []int, rows []int) int {
	seen := map[int]bool{}
	for _, r := range rows {
		seen[y[r]] = true
	}
	return len(seen)
}

// Evaluate runs the protocol on one column: choose C (on val, or by K-fold on train+val), refit on
// train+val, score once on test, and score the kNN baseline (bank train+val, queries test).
func Evaluate(column string, ds Dataset, cfg Config) (*Result, error) {
	start := time.Now()
	cfg = cfg.WithDefaults()
	if err := ds.Validate(column); err != nil {
		return nil, err
	}
	for _, c := range cfg.Cs {
		if !(c > 0) || math.IsInf(c, 0) {
			return nil, fmt.Errorf("linear: C must be positive and finite, got %v", c)
		}
	}
	for _, kk := range cfg.KNN.Ks {
		if kk < 1 {
			return nil, fmt.Errorf("linear: kNN k must be positive, got %d", kk)
		}
	}
	for _, sh := range cfg.Shots {
		if sh < 1 {
			return nil, fmt.Errorf("linear: shots must be positive, got %d", sh)
		}
	}
	if cfg.Seeds < 0 || cfg.Bootstrap < 0 {
		return nil, fmt.Errorf("linear: seeds (%d) and bootstrap (%d) must be ≥ 0", cfg.Seeds, cfg.Bootstrap)
	}
	s, from, err := ds.splits(column, cfg)
	if err != nil {
		return nil, err
	}
	k := len(ds.Classes)
	res := &Result{Column: column, Dim: ds.D, Classes: ds.Classes, SplitFrom: from, NTrain: len(s.Train), NVal: len(s.Val), NTest: len(s.Test)}
	opt := FitOptions{MaxIter: cfg.MaxIter, Tol: cfg.Tol}
	cs := slices.Clone(cfg.Cs)
	sort.Float64s(cs)
	cs = slices.Compact(cs)
	trainVal := mergeSorted(s.Train, s.Val)

	// Selection. Cs run from strong to weak regularisation, each warm-started from the previous
	// solution of the same fold: the path is smooth in C, so later fits need few iterations.
	var folds [][2][]int // (fit rows, held-out rows)
	if cfg.Folds >= 2 {
		parts := StratifiedFolds(trainVal, ds.Y, k, cfg.Folds, cfg.Seed)
		for f := range parts {
			if len(parts[f]) == 0 {
				return nil, fmt.Errorf("linear: column %q: fold %d of %d is empty (%d train+val rows)", column, f, cfg.Folds, len(trainVal))
			}
			var fit []int
			for g := range parts {
				if g != f {
					fit = append(fit, parts[g]...)
				}
			}
			slices.Sort(fit)
			folds = append(folds, [2][]int{fit, parts[f]})
		}
	} else {
		folds = [][2][]int{{s.Train, s.Val}}
	}
	res.ByC = make([]CScore, len(cs))
	for i, c := range cs {
		res.ByC[i] = CScore{C: c}
	}
	// The first fold's solution at each C warm-starts the final refit: train+val statistics are
	// close to the fold's, so the refit starts near its optimum (the optimum itself is unchanged).
	firstFold := make([][]float64, len(cs))
	for f, fold := range folds {
		if countClasses(ds.Y, fold[0]) < 2 {
			return nil, fmt.Errorf("linear: column %q: a selection fold has fewer than 2 classes", column)
		}
		// Standardise once per fold (with the fold's own statistics); every C reuses the matrix.
		st := NewStandardizer(ds.X, ds.D, fold[0])
		xs := make([]float64, len(fold[0])*ds.D)
		st.Apply(xs, ds.X, ds.D, fold[0])
		ys := pick(ds.Y, fold[0])
		var warm []float64
		for i, c := range cs {
			params, info, err := FitStandardized(xs, len(fold[0]), ds.D, k, ys, c, warm, opt)
			if err != nil {
				return nil, fmt.Errorf("linear: column %q: %w", column, err)
			}
			warm = params
			if f == 0 {
				firstFold[i] = params
			}
			m := &Model{Classes: k, Dim: ds.D, Mean: st.Mean, Scale: st.Scale, W: params[:k*ds.D], B: params[k*ds.D:]}
			met := evalModel(m, ds.X, ds.Y, fold[1])
			res.ByC[i].ValTop1 += met.Top1 / float64(len(folds))
			res.ByC[i].ValLogLoss += met.LogLoss / float64(len(folds))
			res.ByC[i].Fits = append(res.ByC[i].Fits, info)
		}
	}
	best := 0
	for i, sc := range res.ByC {
		// Highest accuracy; ties go to the lower log-loss, then to the smaller C.
		b := res.ByC[best]
		if sc.ValTop1 > b.ValTop1 || (sc.ValTop1 == b.ValTop1 && sc.ValLogLoss < b.ValLogLoss) {
			best = i
		}
	}
	res.BestC = cs[best]
	res.Durations.Select = time.Since(start)

	t := time.Now()
	m, _, info, err := fitRows(ds.X, ds.D, trainVal, ds.Y, k, res.BestC, firstFold[best], opt)
	if err != nil {
		return nil, fmt.Errorf("linear: column %q: refit: %w", column, err)
	}
	res.Refit = info
	res.TrainTop1 = evalModel(m, ds.X, ds.Y, trainVal).Top1
	res.Test = evalModel(m, ds.X, ds.Y, s.Test)
	res.Durations.Refit = time.Since(t)

	if cfg.Bootstrap > 0 {
		ci := bootstrapTop1(m, ds.X, ds.Y, s.Test, cfg.Bootstrap, cfg.Seed)
		res.TestTop1CI95 = &ci
	}
	if !cfg.NoKNN {
		t = time.Now()
		scores := make([][]float64, len(cfg.KNN.Ks))
		for i := range scores {
			scores[i] = make([]float64, len(s.Test)*k)
		}
		KNNScoresMulti(scores, ds.X, ds.D, ds.Y, k, trainVal, s.Test, cfg.KNN.Ks, cfg.KNN.Temperature)
		for i, kk := range cfg.KNN.Ks {
			res.KNNByK = append(res.KNNByK, KNNScore{K: kk, EffectiveK: min(kk, len(trainVal)), Metrics: ScoreMetrics(scores[i], k, pick(ds.Y, s.Test), false)})
		}
		res.KNN = &res.KNNByK[0].Metrics
		res.Durations.KNN = time.Since(t)
	}
	for _, shots := range cfg.Shots {
		fs, err := fewShot(ds, s, cs, res.BestC, shots, cfg, opt)
		if err != nil {
			return nil, fmt.Errorf("linear: column %q: %d-shot: %w", column, shots, err)
		}
		res.FewShot = append(res.FewShot, fs)
	}
	res.Durations.Total = time.Since(start)
	return res, nil
}

func evalModel(m *Model, x []float32, y []int, rows []int) Metrics {
	lp := make([]float64, len(rows)*m.Classes)
	m.LogProbabilities(lp, x, rows)
	return ScoreMetrics(lp, m.Classes, pick(y, rows), true)
}

func pick(y []int, rows []int) []int {
	out := make([]int, len(rows))
	for i, r := range rows {
		out[i] = y[r]
	}
	return out
}

func mergeSorted(a, b []int) []int {
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return out
}

// Table is a set of feature columns over the same rows, as read from an embedding store.
type Table struct {
	Columns []string    // column names, in file order
	Values  [][]float32 // per column [N, Dims[i]] row-major
	Dims    []int
	N       int
	Y       []int
	Classes []string
	Split   []string // optional
}

// SelectColumns resolves a user's column list: empty or "all" means every column; an unknown name
// is an error listing the available ones. A name joining columns with "+" (block7_mean+block8_mean)
// stands for their concatenation, as DINO probes its last blocks.
func (t *Table) SelectColumns(names []string) ([]string, error) {
	if len(names) == 0 || (len(names) == 1 && names[0] == "all") {
		return slices.Clone(t.Columns), nil
	}
	for _, n := range names {
		for _, part := range strings.Split(n, "+") {
			if !slices.Contains(t.Columns, part) {
				return nil, fmt.Errorf("linear: column %q not in features (have: %s)", part, strings.Join(t.Columns, ", "))
			}
		}
	}
	return slices.Clone(names), nil
}

// Dataset returns the named column as a Dataset sharing t's slices, or for "a+b" a new matrix
// whose rows are a's row followed by b's.
func (t *Table) Dataset(name string) (Dataset, error) {
	parts := strings.Split(name, "+")
	idx := make([]int, len(parts))
	dim := 0
	for p, part := range parts {
		idx[p] = slices.Index(t.Columns, part)
		if idx[p] < 0 {
			return Dataset{}, fmt.Errorf("linear: column %q not in features (have: %s)", part, strings.Join(t.Columns, ", "))
		}
		dim += t.Dims[idx[p]]
	}
	if len(parts) == 1 {
		return Dataset{X: t.Values[idx[0]], N: t.N, D: dim, Y: t.Y, Classes: t.Classes, Split: t.Split}, nil
	}
	x := make([]float32, 0, t.N*dim)
	for r := range t.N {
		for _, i := range idx {
			x = append(x, t.Values[i][r*t.Dims[i]:(r+1)*t.Dims[i]]...)
		}
	}
	return Dataset{X: x, N: t.N, D: dim, Y: t.Y, Classes: t.Classes, Split: t.Split}, nil
}

// EvaluateAll evaluates the selected columns (see SelectColumns) in depth order. progress, if not
// nil, is called before each column.
func EvaluateAll(t *Table, columns []string, cfg Config, progress func(column string, i, n int)) ([]*Result, error) {
	names, err := t.SelectColumns(columns)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, errors.New("linear: no feature columns to probe")
	}
	SortByDepth(names, cfg.WithDefaults().LayersPerBlock)
	var out []*Result
	for i, name := range names {
		if progress != nil {
			progress(name, i, len(names))
		}
		ds, err := t.Dataset(name)
		if err != nil {
			return nil, err
		}
		r, err := Evaluate(name, ds, cfg)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

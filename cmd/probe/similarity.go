package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/perceiverkit/perceiver/internal/flagcheck"
	"github.com/perceiverkit/perceiver/internal/outfile"
	"github.com/perceiverkit/perceiver/probe"
	"github.com/perceiverkit/perceiver/probe/linear"
	"github.com/perceiverkit/perceiver/probe/similarity"
)

func init() {
	register("similarity", "compare representations (layers, models, other tools' features) by CKA, RSA, mutual k-NN, CKNNA, SVCCA or shape distances", runSimilarity)
}

func runSimilarity(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("similarity", "usage: probe similarity --features A [--against B] [--columns LIST] [--against-columns LIST] --method cka|cka-debiased|cka-rbf|rsa|mutual-knn|cknna|svcca|procrustes|cka-angular [--knn-k K] [--svcca-dims D] [--rdm correlation|euclidean|cosine] [--compare spearman|pearson|kendall] [--max-rows N --seed S] [--permutations N] --out DIR", stderr)
	features := fs.String("features", "", "Parquet file, or folder of part files, written by probe extract; or foreign features (see --against)")
	against := fs.String("against", "", "second features to compare with, rows matched by id: our Parquet file or folder; NAME.npy [n, d] float16/32/64 with NAME.ids.txt or ids.txt beside it (one id per line, text before a TAB); or a clip-retrieval output folder (img_emb/ + metadata/, ids from image_path or key). Default: the columns of --features with each other")
	columns := fs.String("columns", "all", "columns of --features, comma-separated, or all")
	againstColumns := fs.String("against-columns", "", "columns of --against (default: --columns when given, else all)")
	method := fs.String("method", string(similarity.DebiasedCKA), similarity.MethodNames()+"; procrustes and cka-angular are distances in radians (smaller = more similar)")
	knnK := fs.Int("knn-k", 10, "mutual-knn, cknna: nearest neighbours per row (cosine, self excluded)")
	svccaDims := fs.Int("svcca-dims", 10, "svcca: singular directions kept per side")
	rdm := fs.String("rdm", similarity.RDMCorrelation, "rsa: dissimilarity between rows: correlation (1 − Pearson r), euclidean or cosine")
	compare := fs.String("compare", similarity.CompareSpearman, "rsa: statistic between RDMs: spearman, pearson or kendall")
	threshold := fs.Float64("rbf-threshold", 1, "cka-rbf: bandwidth σ as a multiple of the median pairwise distance")
	maxRows := fs.Int("max-rows", 5000, "largest number of rows for the methods whose time or memory grows with n² (cka-rbf, rsa, mutual-knn, cknna); with --seed, a random subset of this many rows is used instead")
	seed := fs.Uint64("seed", 0, "seed of the row subset (--max-rows) and of the permutations")
	perms := fs.Int("permutations", 0, "permutation test with this many permutations: p-values in the outputs")
	out := fs.String("out", "", "output folder: similarity.json, similarity.png, report.md")
	allowMixed := allowMixedFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 || *features == "" || *out == "" {
		return badUsage(fs, "features", "out")
	}
	seedSet := false
	fs.Visit(func(f *flag.Flag) { seedSet = seedSet || f.Name == "seed" })
	m := similarity.Method(*method)
	if !slices.Contains(similarity.Methods, m) {
		return fmt.Errorf("--method %q: want %s", *method, similarity.MethodNames())
	}
	if *maxRows < 1 {
		return fmt.Errorf("--max-rows %d: must be positive", *maxRows)
	}
	if *perms < 0 {
		return fmt.Errorf("--permutations %d: must be ≥ 0", *perms)
	}
	if err := flagcheck.Count("--permutations", int64(*perms), maxPermutations); err != nil {
		return err
	}
	if *perms > 0 && m != similarity.CKA && m != similarity.DebiasedCKA && m != similarity.RBFCKA && m != similarity.RSA {
		return fmt.Errorf("--permutations: available for cka, cka-debiased, cka-rbf and rsa, not --method %s", m)
	}
	if *knnK < 1 || (m == similarity.CKNNA && *knnK < 2) {
		return fmt.Errorf("--knn-k %d: must be ≥ 1 (≥ 2 for cknna)", *knnK)
	}
	if *svccaDims < 1 {
		return fmt.Errorf("--svcca-dims %d: must be ≥ 1", *svccaDims)
	}
	opts := similarity.Options{Method: m, KNNK: *knnK, SVCCADims: *svccaDims}

	jsonPath, pngPath, mdPath := filepath.Join(*out, "similarity.json"), filepath.Join(*out, "similarity.png"), filepath.Join(*out, "report.md")
	if err := outfile.CheckAll(jsonPath, pngPath, mdPath); err != nil {
		return err
	}
	start := time.Now()
	a, aInfo, err := loadSimilarityTable(*features, *columns, "--columns", *allowMixed, stderr)
	if err != nil {
		return err
	}
	var b *probe.Table
	var bInfo *tableInfo
	if *against != "" {
		cols, flag := *againstColumns, "--against-columns"
		if cols == "" {
			cols, flag = *columns, ""
			if probe.IsForeign(*against) {
				cols = "all" // --columns names our columns, not the foreign one
			}
		}
		if b, bInfo, err = loadSimilarityTable(*against, cols, flag, *allowMixed, stderr); err != nil {
			return err
		}
	} else if *againstColumns != "" {
		return fmt.Errorf("--against-columns needs --against")
	}

	// Row i of every representation must be the same input: match by id.
	rowsA := identityRows(a.Len())
	var rowsB []int
	if b != nil {
		if rowsA, rowsB, err = matchIDs(a, b, *features, *against); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "%d rows matched by id (%d in %s, %d in %s)\n", len(rowsA), a.Len(), *features, b.Len(), *against)
	}
	n := len(rowsA)
	if need := m.MinRows(opts); n < need {
		what := fmt.Sprintf("--method %s needs at least %d rows", m, need)
		if m.UsesKNN() {
			what = fmt.Sprintf("--method %s with --knn-k %d needs at least %d rows (K + 1)", m, *knnK, need)
		}
		if b != nil {
			return fmt.Errorf("%s, have %d matched by id (%d in %s, %d in %s)", what, n, a.Len(), *features, b.Len(), *against)
		}
		return fmt.Errorf("%s: %s, have %d", *features, what, n)
	}
	subsampled := false
	if n > *maxRows {
		switch {
		case seedSet:
			subsampled = true
			keep := sampleRows(n, *maxRows, *seed)
			rowsA = pickInts(rowsA, keep)
			if rowsB != nil {
				rowsB = pickInts(rowsB, keep)
			}
			fmt.Fprintf(stderr, "using a random subset of %d of the %d rows (--max-rows %d, --seed %d)\n", *maxRows, n, *maxRows, *seed)
			n = *maxRows
		case m.NeedsGram():
			return fmt.Errorf("--method %s builds n×n matrices and %d rows exceed --max-rows %d: raise --max-rows, or add --seed S to use a random subset of --max-rows rows", m, n, *maxRows)
		case m.Quadratic():
			return fmt.Errorf("--method %s compares every pair of rows (time grows with n²) and %d rows exceed --max-rows %d: raise --max-rows, or add --seed S to use a random subset of --max-rows rows", m, n, *maxRows)
		}
	}
	if err := checkSimilarityMemory(m, n, *knnK, *svccaDims, a, b); err != nil {
		return err
	}

	if m.NeedsGram() { // n×n matrices per representation, two at a time
		if err := flagcheck.Bytes("--max-rows", *maxRows, flagcheck.Mul(float64(n), float64(n), 8, 2)); err != nil {
			return err
		}
	}
	// The permutation test draws every permutation of the n rows up front.
	if err := flagcheck.Bytes("--permutations", *perms, flagcheck.Mul(float64(*perms), float64(n), 8)); err != nil {
		return err
	}
	repsA := representations(a, rowsA, aInfo)
	var repsB []similarity.Representation
	if b != nil {
		repsB = representations(b, rowsB, bInfo)
	}
	a, b = nil, nil // the representations own (copies of) the rows now
	opts.RBFThreshold, opts.RDM, opts.Compare = *threshold, *rdm, *compare
	opts.Permutations, opts.Seed, opts.InPlace = *perms, *seed, true
	opts.Progress = func(done, total int) { fmt.Fprintf(stderr, "\r[%d/%d] pairs", done, total) }
	if m.UsesKNN() || m == similarity.SVCCA {
		// The per-column preparation is the long part at scale (a kNN graph costs n²d/2
		// multiply-adds); say so before the first pair appears.
		fmt.Fprintf(stderr, "preparing %d columns of %d rows (%s) …\n", len(repsA)+len(repsB), n, m)
	}
	res, err := similarity.Compare(repsA, repsB, opts)
	fmt.Fprintln(stderr)
	if err == nil && allNaN(res.Matrix) {
		err = fmt.Errorf("every similarity is undefined (NaN): the representations are constant or not finite")
	}
	if err != nil {
		if *against != "" {
			return fmt.Errorf("%s against %s: %w", *features, *against, err)
		}
		return fmt.Errorf("%s: %w", *features, err)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	command := append([]string{"probe", "similarity"}, args...)
	info := map[string]any{
		"definition":    res.Definition(),
		"features":      *features,
		"features_meta": aInfo.meta,
		"max_rows":      *maxRows,
		"subsampled":    subsampled,
		"command":       command,
		"duration_secs": time.Since(start).Seconds(),
	}
	if bInfo != nil {
		info["against"], info["against_meta"] = *against, bInfo.meta
	}
	js, err := resultJSON(res, info)
	if err != nil {
		return err
	}
	if err := outfile.WriteFile(jsonPath, js, 0o644); err != nil {
		return err
	}
	kind := string(m)
	if m.Distance() {
		kind += " distance"
	}
	title := fmt.Sprintf("%s, n = %d", kind, n)
	if *against != "" {
		title = fmt.Sprintf("%s: %s (rows) vs %s (columns), n = %d", kind, filepath.Base(*features), filepath.Base(*against), n)
	}
	if err := similarity.PlotHeatmap(pngPath, title, res); err != nil {
		return err
	}
	var md strings.Builder
	fmt.Fprintf(&md, "# Representation similarity\n\nRows: `%s`", *features)
	if *against != "" {
		fmt.Fprintf(&md, "; columns: `%s` (rows matched by id)", *against)
	}
	fmt.Fprintf(&md, ".\n\n")
	md.Write(res.Markdown())
	fmt.Fprintf(&md, "\n![heatmap](similarity.png)\n\nCommand: `%s`\n", strings.Join(command, " "))
	if err := outfile.WriteFile(mdPath, []byte(md.String()), 0o644); err != nil {
		return err
	}
	stdout.Write(res.Markdown())
	fmt.Fprintf(stdout, "\nwrote %s, %s, %s\n", jsonPath, pngPath, mdPath)
	return nil
}

// resultJSON writes the result's fields and the run's information as one JSON object.
func resultJSON(res *similarity.Result, info map[string]any) ([]byte, error) {
	b, err := json.Marshal(res)
	if err != nil {
		return nil, err
	}
	var all map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // keep the seed and the values exactly as written
	if err := dec.Decode(&all); err != nil {
		return nil, err
	}
	for k, v := range info {
		all[k] = v
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false) // "n < d" stays readable
	enc.SetIndent("", "  ")
	err = enc.Encode(all)
	return out.Bytes(), err
}

type tableInfo struct {
	meta map[string]string
	lpb  int // layers per block, for the depth order
	// exact holds the float64 values of a float64 foreign source, by column name.
	exact map[string][]float64
}

// loadSimilarityTable reads the named columns (or all) of a features file or folder of parts
// (parts of one run only, unless allowMixed), or foreign features (probe.IsForeign). flag names
// the option that chose the columns ("" when defaulted).
func loadSimilarityTable(path, columns, flag string, allowMixed bool, stderr io.Writer) (*probe.Table, *tableInfo, error) {
	var names []string
	if columns != "all" && columns != "" {
		for _, c := range strings.Split(columns, ",") {
			names = append(names, strings.TrimSpace(c))
		}
	}
	if probe.IsForeign(path) {
		f, err := probe.ReadForeign(path)
		if err != nil {
			return nil, nil, err
		}
		if len(names) > 0 && (len(names) != 1 || names[0] != f.Name) {
			return nil, nil, fmt.Errorf("%s %s: %s holds one column, %q", flag, columns, path, f.Name)
		}
		info := &tableInfo{
			meta: map[string]string{"format": f.Kind, "dtype": f.DType, "rows": fmt.Sprint(len(f.IDs)), "dim": fmt.Sprint(f.Dim), "parts": strings.Join(f.Parts, ",")},
			lpb:  linear.DefaultLayersPerBlock,
		}
		if f.Exact != nil {
			info.exact = map[string][]float64{f.Name: f.Exact}
		}
		return f.Table(), info, nil
	}
	r, err := openFeatures(path, allowMixed, stderr)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	t, err := r.Load(names...)
	if err != nil {
		return nil, nil, err
	}
	if t.Len() == 0 {
		return nil, nil, fmt.Errorf("%s: no rows", path)
	}
	if len(t.Columns) == 0 {
		return nil, nil, fmt.Errorf("%s: no feature columns", path)
	}
	meta := r.Metadata()
	info := &tableInfo{meta: pick(meta, "model", "weights.sha256", "source", "layers", "program", "created"), lpb: layersPerBlock(meta)}
	if info.lpb == 0 {
		info.lpb = linear.DefaultLayersPerBlock
	}
	return t, info, nil
}

// checkSimilarityMemory refuses sizes set by --knn-k, --svcca-dims and --max-rows whose working
// memory would exceed the memory available, before anything is allocated.
func checkSimilarityMemory(m similarity.Method, n, k, dims int, a, b *probe.Table) error {
	cols := len(a.Columns)
	dmax := 0
	for _, t := range []*probe.Table{a, b} {
		if t == nil {
			continue
		}
		if t != a {
			cols += len(t.Columns)
		}
		for _, c := range t.Columns {
			dmax = max(dmax, c.Dim)
		}
	}
	// One column at a time is prepared: its unit rows in float64 and float32 (twice, for the
	// screening product), 16 bytes a value.
	work := 16 * float64(n) * float64(dmax)
	var need float64
	var flag string
	switch {
	case m.UsesKNN():
		// Every column's neighbour lists (row int32 + similarity float64) stay until the end.
		need, flag = work+float64(cols)*float64(n)*float64(k)*12, fmt.Sprintf("--knn-k %d", k)
	case m == similarity.SVCCA:
		need, flag = work+float64(cols)*float64(n)*float64(dims)*8, fmt.Sprintf("--svcca-dims %d", dims)
	default:
		return nil
	}
	if avail := availableMemory(); need > avail {
		return fmt.Errorf("%s: %d columns × %d rows need %.1f GB, more than the %.1f GB available", flag, cols, n, need/1e9, avail/1e9)
	}
	return nil
}

// availableMemory is MemAvailable from /proc/meminfo in bytes (8 GiB when unknown).
func availableMemory() float64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
				var kb float64
				if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%f kB", &kb); err == nil {
					return kb * 1024
				}
			}
		}
	}
	return 8 << 30
}

func identityRows(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// matchIDs returns the rows of a and b holding the same ids, in a's order.
func matchIDs(a, b *probe.Table, pathA, pathB string) ([]int, []int, error) {
	index := make(map[string]int, b.Len())
	for i, id := range b.IDs {
		if _, dup := index[id]; dup {
			return nil, nil, fmt.Errorf("%s: id %q appears twice; rows cannot be matched", pathB, id)
		}
		index[id] = i
	}
	seen := make(map[string]bool, a.Len())
	var ra, rb []int
	for i, id := range a.IDs {
		if seen[id] {
			return nil, nil, fmt.Errorf("%s: id %q appears twice; rows cannot be matched", pathA, id)
		}
		seen[id] = true
		if j, ok := index[id]; ok {
			ra = append(ra, i)
			rb = append(rb, j)
		}
	}
	if len(ra) == 0 {
		return nil, nil, fmt.Errorf("no common ids between %s (%d rows, e.g. %q) and %s (%d rows, e.g. %q)", pathA, a.Len(), a.IDs[0], pathB, b.Len(), b.IDs[0])
	}
	return ra, rb, nil
}

// sampleRows returns k of n row positions drawn without replacement from a PCG seeded by seed,
// in increasing order.
func sampleRows(n, k int, seed uint64) []int {
	rng := rand.New(rand.NewPCG(seed, 0xda3e39cb94b95bdb))
	p := identityRows(n)
	for i := range k { // partial Fisher–Yates
		j := i + rng.IntN(n-i)
		p[i], p[j] = p[j], p[i]
	}
	keep := p[:k]
	slices.Sort(keep)
	return keep
}

func pickInts(s, at []int) []int {
	out := make([]int, len(at))
	for i, k := range at {
		out[i] = s[k]
	}
	return out
}

// representations gathers the given rows of every column of t, in depth order. When rows are all
// of t's rows in order, the column data is used as is.
func representations(t *probe.Table, rows []int, info *tableInfo) []similarity.Representation {
	all := len(rows) == t.Len()
	for i, r := range rows {
		all = all && r == i
	}
	names := make([]string, len(t.Columns))
	for j, c := range t.Columns {
		names[j] = c.Name
	}
	linear.SortByDepth(names, info.lpb)
	out := make([]similarity.Representation, 0, len(names))
	for _, name := range names {
		v, d, _ := t.Vector(name)
		if !all {
			g := make([]float32, len(rows)*d)
			for i, r := range rows {
				copy(g[i*d:(i+1)*d], v[r*d:(r+1)*d])
			}
			v = g
		}
		rep := similarity.Representation{Name: name, Data: rescaled(v, all), Dim: d}
		if e := info.exact[name]; e != nil {
			rep.Exact = e
			if !all {
				rep.Exact = make([]float64, len(rows)*d)
				for i, r := range rows {
					copy(rep.Exact[i*d:(i+1)*d], e[r*d:(r+1)*d])
				}
			}
			if s := scaleOf(v); s != 1 { // the same power of two as the float32 copy
				scaled := make([]float64, len(rep.Exact))
				for i, x := range rep.Exact {
					scaled[i] = x * float64(s)
				}
				rep.Exact = scaled
			}
		}
		out = append(out, rep)
	}
	return out
}

// rescaled returns v multiplied by a power of two that brings its largest magnitude near 1 when it
// is far from it (beyond 2^±32): every method is invariant to scaling a representation, and
// features of ~3e37 would otherwise overflow the sums of products (a matrix of nulls, or +Inf in
// the RBF bandwidth). A power of two scales exactly; shared is true when v is the table's own
// column, which is then copied rather than changed.
func rescaled(v []float32, shared bool) []float32 {
	s := scaleOf(v)
	if s == 1 {
		return v
	}
	out := v
	if shared {
		out = make([]float32, len(v))
	}
	for i, x := range v {
		out[i] = x * s
	}
	return out
}

// scaleOf is the power of two rescaled multiplies v by: 1 unless the largest finite magnitude is
// outside [2⁻³², 2³²].
func scaleOf(v []float32) float32 {
	var top float64
	for _, x := range v {
		if a := math.Abs(float64(x)); a > top && !math.IsInf(a, 0) {
			top = a
		}
	}
	if top == 0 || (top < 1<<32 && top > 1.0/(1<<32)) {
		return 1
	}
	_, e := math.Frexp(top)
	return float32(math.Ldexp(1, -e))
}

// allNaN reports whether a matrix holds no number at all: written as all nulls, it would look
// like a result.
func allNaN(m [][]float64) bool {
	for _, row := range m {
		for _, v := range row {
			if !math.IsNaN(v) {
				return false
			}
		}
	}
	return len(m) > 0
}

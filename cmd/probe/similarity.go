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
	register("similarity", "compare representations (layers, models) by CKA or RSA", runSimilarity)
}

func runSimilarity(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("similarity", "usage: probe similarity --features A [--against B] [--columns LIST] [--against-columns LIST] --method cka|cka-debiased|cka-rbf|rsa [--rdm correlation|euclidean|cosine] [--compare spearman|pearson|kendall] [--max-rows N --seed S] [--permutations N] --out DIR", stderr)
	features := fs.String("features", "", "Parquet file, or folder of part files, written by probe extract")
	against := fs.String("against", "", "second features file to compare with (rows matched by id); default: the columns of --features with each other")
	columns := fs.String("columns", "all", "columns of --features, comma-separated, or all")
	againstColumns := fs.String("against-columns", "", "columns of --against (default: --columns when given, else all)")
	method := fs.String("method", string(similarity.DebiasedCKA), "cka, cka-debiased, cka-rbf or rsa")
	rdm := fs.String("rdm", similarity.RDMCorrelation, "rsa: dissimilarity between rows: correlation (1 − Pearson r), euclidean or cosine")
	compare := fs.String("compare", similarity.CompareSpearman, "rsa: statistic between RDMs: spearman, pearson or kendall")
	threshold := fs.Float64("rbf-threshold", 1, "cka-rbf: bandwidth σ as a multiple of the median pairwise distance")
	maxRows := fs.Int("max-rows", 5000, "largest number of rows for the methods that build n×n matrices (cka-rbf, rsa); with --seed, a random subset of this many rows is used instead")
	seed := fs.Uint64("seed", 0, "seed of the row subset (--max-rows) and of the permutations")
	perms := fs.Int("permutations", 0, "permutation test with this many permutations: p-values in the outputs")
	out := fs.String("out", "", "output folder: similarity.json, similarity.png, report.md")
	allowMixed := allowMixedFlag(fs)
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 || *features == "" || *out == "" {
		fs.Usage()
		return errUsage
	}
	seedSet := false
	fs.Visit(func(f *flag.Flag) { seedSet = seedSet || f.Name == "seed" })
	m := similarity.Method(*method)
	if !slices.Contains(similarity.Methods, m) {
		return fmt.Errorf("--method %q: want cka, cka-debiased, cka-rbf or rsa", *method)
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

	jsonPath, pngPath, mdPath := filepath.Join(*out, "similarity.json"), filepath.Join(*out, "similarity.png"), filepath.Join(*out, "report.md")
	if err := outfile.CheckAll(jsonPath, pngPath, mdPath); err != nil {
		return err
	}
	start := time.Now()
	a, aInfo, err := loadSimilarityTable(*features, *columns, *allowMixed, stderr)
	if err != nil {
		return err
	}
	var b *probe.Table
	var bInfo *tableInfo
	if *against != "" {
		cols := *againstColumns
		if cols == "" {
			cols = *columns
		}
		if b, bInfo, err = loadSimilarityTable(*against, cols, *allowMixed, stderr); err != nil {
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
		}
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
	repsA := representations(a, rowsA, aInfo.lpb)
	var repsB []similarity.Representation
	if b != nil {
		repsB = representations(b, rowsB, bInfo.lpb)
	}
	a, b = nil, nil // the representations own (copies of) the rows now
	res, err := similarity.Compare(repsA, repsB, similarity.Options{
		Method: m, RBFThreshold: *threshold, RDM: *rdm, Compare: *compare,
		Permutations: *perms, Seed: *seed, InPlace: true,
		Progress: func(done, total int) { fmt.Fprintf(stderr, "\r[%d/%d] pairs", done, total) },
	})
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
	title := fmt.Sprintf("%s, n = %d", m, n)
	if *against != "" {
		title = fmt.Sprintf("%s: %s (rows) vs %s (columns), n = %d", m, filepath.Base(*features), filepath.Base(*against), n)
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
}

// loadSimilarityTable reads the named columns (or all) of a features file or folder of parts.
func loadSimilarityTable(path, columns string, allowMixed bool, stderr io.Writer) (*probe.Table, *tableInfo, error) {
	r, err := openFeatures(path, allowMixed, stderr)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	var names []string
	if columns != "all" && columns != "" {
		for _, c := range strings.Split(columns, ",") {
			names = append(names, strings.TrimSpace(c))
		}
	}
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
func representations(t *probe.Table, rows []int, lpb int) []similarity.Representation {
	all := len(rows) == t.Len()
	for i, r := range rows {
		all = all && r == i
	}
	names := make([]string, len(t.Columns))
	for j, c := range t.Columns {
		names[j] = c.Name
	}
	linear.SortByDepth(names, lpb)
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
		out = append(out, similarity.Representation{Name: name, Data: rescaled(v, all), Dim: d})
	}
	return out
}

// rescaled returns v multiplied by a power of two that brings its largest magnitude near 1 when it
// is far from it (beyond 2^±32): every method is invariant to scaling a representation, and
// features of ~3e37 would otherwise overflow the sums of products (a matrix of nulls, or +Inf in
// the RBF bandwidth). A power of two scales exactly; shared is true when v is the table's own
// column, which is then copied rather than changed.
func rescaled(v []float32, shared bool) []float32 {
	var top float64
	for _, x := range v {
		if a := math.Abs(float64(x)); a > top && !math.IsInf(a, 0) {
			top = a
		}
	}
	if top == 0 || (top < 1<<32 && top > 1.0/(1<<32)) {
		return v
	}
	_, e := math.Frexp(top)
	s := float32(math.Ldexp(1, -e))
	out := v
	if shared {
		out = make([]float32, len(v))
	}
	for i, x := range v {
		out[i] = x * s
	}
	return out
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

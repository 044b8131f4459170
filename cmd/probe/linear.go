package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/perceiverkit/perceiver/internal/flagcheck"
	"github.com/perceiverkit/perceiver/internal/outfile"
	"github.com/perceiverkit/perceiver/probe"
	"github.com/perceiverkit/perceiver/probe/linear"
)

func init() {
	register("linear", "linear-probe (and kNN) evaluation of extracted features, column by column", runLinear)
	register("export", "write feature columns as .npy or CSV", runExport)
}

func runLinear(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("linear", "usage: probe linear --features FILE|DIR [--columns c1,c2|all] [--label label] [--split-col split] [--val-frac F] [--test-frac F] [--C LIST] [--folds K] [--seed N] [--knn-k LIST] [--shots LIST --seeds N] [--bootstrap N] [--report DIR]", stderr)
	features := fs.String("features", "", "Parquet file, or folder of part files, written by probe extract")
	columns := fs.String("columns", "all", "feature columns to probe, comma-separated, or all; a+b probes the concatenation of columns a and b")
	labelCol := fs.String("label", "label", "label column: label (class index) or label_name")
	splitCol := fs.String("split-col", "split", "split column with train/val/test values; none to ignore it")
	valFrac := fs.Float64("val-frac", 0.1, "validation fraction of a stratified split (when the file has no split column)")
	testFrac := fs.Float64("test-frac", 0.2, "test fraction of a stratified split (when the file has no split column)")
	cs := fs.String("C", "", "inverse regularisation strengths to try, comma-separated (default 1e-6,1e-5,…,1e6)")
	folds := fs.Int("folds", 0, "choose C by K-fold cross-validation on train+val (K ≥ 2) instead of the val split")
	seed := fs.Uint64("seed", 0, "seed of the stratified split and the folds")
	maxIter := fs.Int("max-iter", 1000, "L-BFGS iterations per fit")
	tol := fs.Float64("tol", 1e-5, "gradient tolerance of the per-sample objective")
	noKNN := fs.Bool("no-knn", false, "skip the kNN baseline")
	knnK := fs.String("knn-k", "20", "kNN neighbour counts, comma-separated (DINO: 10,20,100,200); the first is the headline kNN")
	shots := fs.String("shots", "", "few-shot sizes, comma-separated: k train rows per class, e.g. 1,5,10")
	seeds := fs.Int("seeds", 5, "few-shot draws per size (mean ± sd)")
	bootstrap := fs.Int("bootstrap", 0, "resample the test rows N times for a 95% interval of test top-1")
	report := fs.String("report", "", "folder for report.json, report.md, accuracy-by-layer.png, confusion.png")
	allowMixed := allowMixedFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 || *features == "" {
		return badUsage(fs, "features")
	}
	cfg := linear.Config{Folds: *folds, ValFrac: *valFrac, TestFrac: *testFrac, Seed: *seed, MaxIter: *maxIter, Tol: *tol, NoKNN: *noKNN,
		Seeds: *seeds, Bootstrap: *bootstrap}
	var err error
	if cfg.KNN.Ks, err = positiveInts("--knn-k", *knnK); err != nil {
		return err
	}
	if cfg.Shots, err = positiveInts("--shots", *shots); err != nil {
		return err
	}
	if *seeds < 1 || *bootstrap < 0 {
		return fmt.Errorf("--seeds %d must be ≥ 1 and --bootstrap %d ≥ 0", *seeds, *bootstrap)
	}
	if err := flagcheck.Count("--bootstrap", int64(*bootstrap), maxBootstrap); err != nil {
		return err
	}
	if err := flagcheck.Count("--seeds", int64(*seeds), maxBootstrap); err != nil {
		return err
	}
	if !(*valFrac >= 0 && *valFrac < 1) || !(*testFrac >= 0 && *testFrac < 1) || *valFrac+*testFrac >= 1 {
		return fmt.Errorf("--val-frac %g and --test-frac %g: each in [0, 1), their sum below 1", *valFrac, *testFrac)
	}
	if *cs != "" {
		for _, f := range strings.Split(*cs, ",") {
			c, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil || !(c > 0) {
				return fmt.Errorf("--C: %q is not a positive number", f)
			}
			cfg.Cs = append(cfg.Cs, c)
		}
	}
	cfg = cfg.WithDefaults()

	if *report != "" {
		if err := outfile.CheckAll(linear.ReportFiles(*report)...); err != nil {
			return err
		}
	}
	r, err := openFeatures(*features, *allowMixed, stderr)
	if err != nil {
		return err
	}
	defer r.Close()
	tab, err := r.Load()
	if err != nil {
		return err
	}
	if *folds > tab.Len() {
		return fmt.Errorf("--folds %d: more folds than the %d rows of %s", *folds, tab.Len(), *features)
	}
	meta := r.Metadata()
	if lpb := layersPerBlock(meta); lpb > 0 {
		cfg.LayersPerBlock = lpb
	}
	lt, dropped, err := linearTable(tab, *labelCol, *splitCol)
	if err != nil {
		return fmt.Errorf("%s: %w", *features, err)
	}
	if dropped > 0 {
		fmt.Fprintf(stderr, "%d rows without a label left out\n", dropped)
	}
	var cols []string
	if *columns != "all" {
		cols = strings.Split(*columns, ",")
	}
	start := time.Now()
	results, err := linear.EvaluateAll(lt, cols, cfg, func(col string, i, n int) {
		fmt.Fprintf(stderr, "[%d/%d] %s\n", i+1, n, col)
	})
	if err != nil {
		return fmt.Errorf("%s: %w", *features, err)
	}
	stdout.Write(linear.Markdown(results, cfg))
	if *report != "" {
		info := map[string]any{
			"features":       *features,
			"files":          r.Files(),
			"rows":           lt.N,
			"features_meta":  pick(meta, "model", "weights.sha256", "source", "layers", "program", "created"),
			"duration_secs":  time.Since(start).Seconds(),
			"label_column":   *labelCol,
			"split_column":   *splitCol,
			"command":        append([]string{"probe", "linear"}, args...),
			"layers_per_blk": cfg.LayersPerBlock,
		}
		if err := linear.WriteReport(*report, results, cfg, info); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\nreport: %s\n", filepath.Join(*report, "report.md"))
	}
	return nil
}

// positiveInts parses a comma-separated list of positive integers ("" is the empty list).
func positiveInts(flagName, list string) ([]int, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	var out []int
	for _, f := range strings.Split(list, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < 1 {
			return nil, fmt.Errorf("%s: %q is not a positive integer", flagName, f)
		}
		out = append(out, v)
	}
	return out, nil
}

// layersPerBlock reads num_self_attends_per_block from the config stored in a features file, so
// block{b} columns sit at the right depth next to layer{j} columns.
func layersPerBlock(meta map[string]string) int {
	var c struct {
		N int `json:"num_self_attends_per_block"`
	}
	if json.Unmarshal([]byte(meta["config.json"]), &c) != nil {
		return 0
	}
	return c.N
}

func pick(m map[string]string, keys ...string) map[string]string {
	out := map[string]string{}
	for _, k := range keys {
		if v, ok := m[k]; ok {
			out[k] = v
		}
	}
	return out
}

// linearTable turns the stored rows into the probe's table, keeping rows that have a label.
func linearTable(t *probe.Table, labelCol, splitCol string) (*linear.Table, int, error) {
	var keep []int
	var y []int
	var classes []string
	switch labelCol {
	case "label":
		// Classes are the distinct label values, in increasing order: sizing them by the largest
		// value allocates per possible label (ImageNet synset offsets, or 2^40, exhaust memory).
		names := map[int64]string{}
		var values []int64
		for i := range t.IDs {
			if !t.HasLabel[i] {
				continue
			}
			if t.Labels[i] < 0 {
				return nil, 0, fmt.Errorf("row %s: negative label %d", t.IDs[i], t.Labels[i])
			}
			l := t.Labels[i]
			keep = append(keep, i)
			if _, seen := names[l]; !seen || names[l] == "" {
				if !seen {
					values = append(values, l)
				}
				names[l] = t.LabelNames[i]
			}
		}
		slices.Sort(values)
		class := make(map[int64]int, len(values))
		classes = make([]string, len(values))
		for c, l := range values {
			class[l] = c
			if names[l] != "" {
				classes[c] = names[l]
			} else {
				classes[c] = strconv.FormatInt(l, 10)
			}
		}
		for _, i := range keep {
			y = append(y, class[t.Labels[i]])
		}
	case "label_name":
		index := map[string]int{}
		for i, n := range t.LabelNames {
			if n == "" {
				continue
			}
			if _, ok := index[n]; !ok {
				index[n] = len(classes)
				classes = append(classes, n)
			}
			keep = append(keep, i)
		}
		sorted := append([]string(nil), classes...)
		slices.Sort(sorted)
		for j, n := range sorted {
			index[n] = j
		}
		classes = sorted
		for _, i := range keep {
			y = append(y, index[t.LabelNames[i]])
		}
	default:
		return nil, 0, fmt.Errorf("--label %q: want label or label_name", labelCol)
	}
	if len(keep) == 0 {
		return nil, 0, fmt.Errorf("no row has a %s", labelCol)
	}
	lt := &linear.Table{N: len(keep), Y: y, Classes: classes}
	for j, c := range t.Columns {
		vals := make([]float32, len(keep)*c.Dim)
		for k, i := range keep {
			copy(vals[k*c.Dim:(k+1)*c.Dim], t.Vectors[j][i*c.Dim:(i+1)*c.Dim])
		}
		lt.Columns = append(lt.Columns, c.Name)
		lt.Values = append(lt.Values, vals)
		lt.Dims = append(lt.Dims, c.Dim)
	}
	switch splitCol {
	case "none":
	case "split":
		has := false
		split := make([]string, len(keep))
		for k, i := range keep {
			split[k] = t.Splits[i]
			has = has || split[k] != ""
		}
		if has {
			lt.Split = split
		}
	default:
		return nil, 0, fmt.Errorf("--split-col %q: want split or none", splitCol)
	}
	return lt, len(t.IDs) - len(keep), nil
}

func runExport(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("export", "usage: probe export --features FILE --columns LIST --format npy|csv|clip-retrieval [--out PATH] [--dtype float32|float16] [--rows-per-file N] [--force]", stderr)
	features := fs.String("features", "", "Parquet file, or folder of part files, written by probe extract")
	columns := fs.String("columns", "all", "feature columns to export, comma-separated, or all (clip-retrieval: one column)")
	format := fs.String("format", "npy", "npy (one COLUMN.npy per column plus labels.npy, -1 where a row has no label, and ids.jsonl, one JSON object {\"id\", \"split\"} per row), csv (one table), or clip-retrieval (img_emb/img_emb_N.npy + metadata/metadata_N.parquet)")
	out := fs.String("out", "", "output folder for npy and clip-retrieval; output file for csv (default standard output); existing files are never replaced (clip-retrieval: unless --force)")
	dtype := fs.String("dtype", "float32", "clip-retrieval: embedding dtype, float32 or float16")
	perFile := fs.Int("rows-per-file", 1_000_000, "clip-retrieval: rows per img_emb/metadata part")
	force := fs.Bool("force", false, "clip-retrieval: replace existing parts")
	allowMixed := allowMixedFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 || *features == "" || ((*format == "npy" || *format == "clip-retrieval") && *out == "") {
		return badUsage(fs, "features", "out")
	}
	r, err := openFeatures(*features, *allowMixed, stderr)
	if err != nil {
		return err
	}
	defer r.Close()
	if *format == "clip-retrieval" {
		return exportClipRetrieval(r, *columns, *out, *dtype, *perFile, *force, stdout)
	}
	var names []string
	if *columns != "all" {
		names = strings.Split(*columns, ",")
	}
	t, err := r.Load(names...)
	if err != nil {
		return err
	}
	// -1 marks a row without a label in labels.npy and the CSV, so a stored label of -1 (files of
	// versions before extract refused it) would be read as missing: refuse it.
	labels := make([]int64, t.Len())
	for i := range labels {
		labels[i] = -1
		if t.HasLabel[i] {
			if t.Labels[i] < 0 {
				return fmt.Errorf("%s: row %q has label %d; export writes -1 for a missing label, so negative labels cannot be told apart: re-extract with labels ≥ 0", *features, t.IDs[i], t.Labels[i])
			}
			labels[i] = t.Labels[i]
		}
	}
	switch *format {
	case "npy":
		names := []string{"labels.npy", "ids.jsonl"}
		for _, c := range t.Columns {
			names = append(names, c.Name+".npy")
		}
		for _, n := range names { // refuse before writing any
			if err := refuseExisting(filepath.Join(*out, n)); err != nil {
				return err
			}
		}
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return err
		}
		write := func(name string, fn func(io.Writer) error) error {
			path := filepath.Join(*out, name)
			if err := writeNewFile(path, fn); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "wrote %s\n", path)
			return nil
		}
		for j, c := range t.Columns {
			if err := write(c.Name+".npy", func(w io.Writer) error { return linear.WriteNPY(w, t.Vectors[j], t.Len(), c.Dim) }); err != nil {
				return err
			}
		}
		if err := write("labels.npy", func(w io.Writer) error { return linear.WriteNPYInt64(w, labels, t.Len()) }); err != nil {
			return err
		}
		// JSON lines: an id may hold a tab or a newline (file names can), and every reader
		// (pandas.read_json(lines=True), jq, json.loads per line) still gets one row per line.
		return write("ids.jsonl", func(w io.Writer) error {
			enc := json.NewEncoder(w)
			enc.SetEscapeHTML(false)
			for i, id := range t.IDs {
				if err := enc.Encode(struct {
					ID    string `json:"id"`
					Split string `json:"split"`
				}{id, t.Splits[i]}); err != nil {
					return err
				}
			}
			return nil
		})
	case "csv":
		cols := []linear.CSVColumn{
			{Name: "id", Strings: t.IDs},
			{Name: "label", Ints: labels},
			{Name: "label_name", Strings: t.LabelNames},
			{Name: "split", Strings: t.Splits},
		}
		for j, c := range t.Columns {
			cols = append(cols, linear.CSVColumn{Name: c.Name, Floats: t.Vectors[j], Width: c.Dim})
		}
		if *out != "" {
			return writeNewFile(*out, func(w io.Writer) error { return linear.WriteCSV(w, cols...) })
		}
		return linear.WriteCSV(stdout, cols...)
	default:
		return fmt.Errorf("--format %q: want npy, csv or clip-retrieval", *format)
	}
}

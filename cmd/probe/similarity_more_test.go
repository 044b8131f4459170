package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perceiverkit/perceiver/probe"
	"github.com/perceiverkit/perceiver/probe/linear"
)

// simRef is testdata/similarity/reference.json, written by tools/similarity/reference.py: an
// independent float64 NumPy implementation of the five measures (explicit n×n matrices) on the
// fixtures beside it.
type simRef struct {
	KNNK      int      `json:"knn_k"`
	SVCCADims int      `json:"svcca_dims"`
	Columns   []string `json:"columns"`
	Cases     map[string]struct {
		Features       string                  `json:"features"` // "": the fixture's layers as one Parquet file
		AgainstColumns []string                `json:"against_columns"`
		N              int                     `json:"n"`
		Matrix         map[string][][]*float64 `json:"matrix"`
	} `json:"cases"`
}

const simFixtures = "../../testdata/similarity"

// writeFixtureParquet stores the fixture's three float32 layers (features/NAME.npy with
// features/ids.txt) as one Parquet file of ours: "columns of one file".
func writeFixtureParquet(t *testing.T, path string, names []string) {
	t.Helper()
	var cols []probe.Column
	var data []*probe.Foreign
	for _, name := range names {
		f, err := probe.ReadNPYFeatures(filepath.Join(simFixtures, "features", name+".npy"))
		if err != nil {
			t.Fatal(err)
		}
		cols = append(cols, probe.Column{Name: name, Dim: f.Dim})
		data = append(data, f)
	}
	w, err := probe.Create(path, cols, probe.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range data[0].IDs {
		vecs := make([][]float32, len(data))
		for c, f := range data {
			vecs[c] = f.Data[i*f.Dim : (i+1)*f.Dim]
		}
		if err := w.Write(probe.Row{Index: i, ID: id, Vectors: vecs}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// Each new measure through `probe similarity` agrees with the NumPy float64 reference within 1e-4
// (1e-3 for procrustes), for the columns of one file with each other, against a float32 .npy with
// ids in another order (NAME.ids.txt), a float64 .npy with export's ids.txt (`id<TAB>split`,
// CRLF), a clip-retrieval folder of two float16 parts, and a foreign --features (vit.npy) against
// that folder.
func TestSimilarityNewMethodsMatchNumpy(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(simFixtures, "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref simRef
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	features := filepath.Join(dir, "features.parquet")
	writeFixtureParquet(t, features, ref.Columns)
	against := map[string]string{
		"self":        "",
		"vit":         filepath.Join(simFixtures, "vit.npy"),
		"dino64":      filepath.Join(simFixtures, "vit64", "dino.npy"),
		"clip":        filepath.Join(simFixtures, "clip"),
		"vit-vs-clip": filepath.Join(simFixtures, "clip"),
		"wide":        filepath.Join(simFixtures, "wide", "wide.npy"),
	}
	if len(against) != len(ref.Cases) {
		t.Fatalf("%d reference cases, %d here", len(ref.Cases), len(against))
	}
	methods := []string{"mutual-knn", "cknna", "svcca", "procrustes", "cka-angular"}
	if testing.Short() {
		methods = []string{"mutual-knn", "cknna"}
	}
	for name, c := range ref.Cases {
		for _, m := range methods {
			t.Run(name+"/"+m, func(t *testing.T) {
				out := filepath.Join(dir, name+"-"+m)
				feat := features
				if c.Features != "" {
					feat = filepath.Join(simFixtures, c.Features)
				}
				args := []string{"similarity", "--features", feat, "--method", m, "--out", out}
				if against[name] != "" {
					args = append(args, "--against", against[name])
				}
				if _, errOut, code := run(t, args...); code != 0 {
					t.Fatalf("exit %d: %s", code, errOut)
				}
				got := readSimJSON(t, out)
				if got.N != c.N || strings.Join(got.AgainstColumns, ",") != strings.Join(c.AgainstColumns, ",") {
					t.Fatalf("n %d against %v; want %d, %v", got.N, got.AgainstColumns, c.N, c.AgainstColumns)
				}
				tol := 1e-4
				if m == "procrustes" {
					tol = 1e-3
				}
				want := c.Matrix[m]
				for i := range want {
					for j := range want[i] {
						g, w := got.Matrix[i][j], want[i][j]
						if (g == nil) != (w == nil) || (g != nil && math.Abs(*g-*w) > tol) {
							t.Errorf("[%d][%d] = %s, want %s (±%g)", i, j, fmtPtr(g), fmtPtr(w), tol)
						}
					}
				}
				md, err := os.ReadFile(filepath.Join(out, "report.md"))
				if err != nil {
					t.Fatal(err)
				}
				if distance := m == "procrustes" || m == "cka-angular"; distance != strings.Contains(string(md), "smaller = more similar") {
					t.Errorf("report.md of %s: says distance/smaller = more similar: %v", m, !distance)
				}
			})
		}
	}
}

func fmtPtr(p *float64) string {
	if p == nil {
		return "null"
	}
	return strings.TrimRight(strings.TrimRight(jsonNumber(*p), "0"), ".")
}

func jsonNumber(v float64) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// Bad input for the new methods and the foreign readers: one line naming the flag or the file and
// the counts, before any output.
func TestSimilarityForeignBadInput(t *testing.T) {
	dir := t.TempDir()
	cols, rows := simData(12, 3)
	a := filepath.Join(dir, "a.parquet")
	writeSim(t, a, cols, rows, nil)
	// A foreign .npy holding 5 of a's 12 ids (plus 2 others).
	few := filepath.Join(dir, "few", "vit.npy")
	if err := os.MkdirAll(filepath.Dir(few), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(few)
	if err != nil {
		t.Fatal(err)
	}
	vals := make([]float32, 7*3)
	for i := range vals {
		vals[i] = float32(i%5) + float32(i)/7
	}
	if err := linear.WriteNPY(f, vals, 7, 3); err != nil {
		t.Fatal(err)
	}
	f.Close()
	var ids strings.Builder
	for i := range 5 {
		ids.WriteString(rows[i].id + "\n")
	}
	ids.WriteString("x/1\nx/2\n")
	if err := os.WriteFile(filepath.Join(dir, "few", "vit.ids.txt"), []byte(ids.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--features", a, "--against", few, "--method", "mutual-knn"}, "--method mutual-knn with --knn-k 10 needs at least 11 rows (K + 1), have 5 matched by id (12 in " + a + ", 7 in " + few + ")"},
		{[]string{"--features", a, "--method", "mutual-knn", "--knn-k", "12"}, a + ": --method mutual-knn with --knn-k 12 needs at least 13 rows (K + 1), have 12"},
		{[]string{"--features", a, "--method", "cknna", "--knn-k", "1"}, "--knn-k 1: must be ≥ 1 (≥ 2 for cknna)"},
		{[]string{"--features", a, "--method", "svcca", "--svcca-dims", "0"}, "--svcca-dims 0"},
		{[]string{"--features", a, "--method", "procrustes", "--permutations", "9"}, "--permutations: available for cka, cka-debiased, cka-rbf and rsa, not --method procrustes"},
		{[]string{"--features", a, "--against", few, "--against-columns", "decoder"}, `--against-columns decoder: ` + few + ` holds one column, "vit"`},
		{[]string{"--features", a, "--against", filepath.Join(dir, "none.npy")}, "none.npy"},
		{[]string{"--features", a, "--method", "mutual-knn", "--knn-k", "3", "--max-rows", "10"}, "compares every pair of rows (time grows with n²) and 12 rows exceed --max-rows 10"},
	} {
		_, errOut, code := run(t, append(append([]string{"similarity"}, tc.args...), "--out", out)...)
		lines := strings.Split(strings.TrimSpace(errOut), "\n") // the error is the last line
		if code == 0 || !strings.Contains(lines[len(lines)-1], tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want a last line containing %q", tc.args, code, errOut, tc.want)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("an output was written despite the errors")
	}
	// The one size no row count bounds: neighbour lists for a million rows at K = 100,000.
	two := &probe.Table{Columns: []probe.Column{{Name: "a", Dim: 1000}, {Name: "b", Dim: 1000}}}
	if err := checkSimilarityMemory("mutual-knn", 1_000_000, 100_000, 10, two, nil); err == nil || !strings.Contains(err.Error(), "--knn-k 100000: 2 columns × 1000000 rows need 2416.0 GB") {
		t.Errorf("memory check: %v", err)
	}
}

// The writer and the readers agree: `probe export --format npy` and `--format clip-retrieval` (three
// float32 parts) read back through --against match every row by id, and a column against its own
// export has identical neighbourhoods (mutual-knn exactly 1).
func TestSimilarityReadsOwnExports(t *testing.T) {
	dir := t.TempDir()
	features := filepath.Join(dir, "features.parquet")
	writeFixtureParquet(t, features, []string{"block1_mean", "block2_mean", "decoder"})
	cr, npyDir := filepath.Join(dir, "cr"), filepath.Join(dir, "npy")
	for _, args := range [][]string{
		{"export", "--features", features, "--columns", "block2_mean", "--format", "clip-retrieval", "--rows-per-file", "100", "--out", cr},
		{"export", "--features", features, "--columns", "block2_mean", "--format", "npy", "--out", npyDir},
	} {
		if _, errOut, code := run(t, args...); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
	}
	for _, against := range []string{cr, filepath.Join(npyDir, "block2_mean.npy")} {
		out := filepath.Join(dir, "sim-"+filepath.Base(against))
		if _, errOut, code := run(t, "similarity", "--features", features, "--columns", "block2_mean", "--against", against, "--method", "mutual-knn", "--out", out); code != 0 {
			t.Fatalf("%s: exit %d: %s", against, code, errOut)
		}
		got := readSimJSON(t, out)
		if got.N != 240 || got.Matrix[0][0] == nil || *got.Matrix[0][0] != 1 {
			t.Errorf("%s: n %d, mutual-knn %v; want 240 rows and exactly 1", against, got.N, fmtPtr(got.Matrix[0][0]))
		}
	}
}

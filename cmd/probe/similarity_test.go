package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/perceiverkit/perceiver/probe"
	"github.com/perceiverkit/perceiver/probe/similarity"
)

// simRow is one stored row: an id and its vectors per column.
type simRow struct {
	id   string
	vecs [][]float32
}

// simData makes rows with three related columns, stored out of depth order.
func simData(n int, seed uint64) ([]probe.Column, []simRow) {
	cols := []probe.Column{{Name: "decoder", Dim: 4}, {Name: "block2_mean", Dim: 6}, {Name: "block1_mean", Dim: 5}}
	rng := rand.New(rand.NewPCG(seed, 1))
	rows := make([]simRow, n)
	for i := range rows {
		base := make([]float32, 5)
		for j := range base {
			base[j] = float32(rng.NormFloat64())
		}
		vecs := make([][]float32, len(cols))
		for c, col := range cols {
			v := make([]float32, col.Dim)
			for j := range v {
				v[j] = base[j%5]*float32(c+1) + float32(rng.NormFloat64())*0.5*float32(c)
			}
			vecs[c] = v
		}
		rows[i] = simRow{id: fmt.Sprintf("img/%03d.png", i), vecs: vecs}
	}
	return cols, rows
}

func writeSim(t *testing.T, path string, cols []probe.Column, rows []simRow, indices []int) {
	t.Helper()
	w, err := probe.Create(path, cols, probe.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for k, r := range rows {
		idx := k
		if indices != nil {
			idx = indices[k]
		}
		if err := w.Write(probe.Row{Index: idx, ID: r.id, Vectors: r.vecs}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func readSimJSON(t *testing.T, dir string) (res struct {
	Method         string       `json:"method"`
	Columns        []string     `json:"columns"`
	AgainstColumns []string     `json:"against_columns"`
	N              int          `json:"n"`
	Matrix         [][]*float64 `json:"matrix"`
	PValues        [][]*float64 `json:"p_values"`
	Subsampled     bool         `json:"subsampled"`
}) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "similarity.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"similarity.png", "report.md"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s missing or empty: %v", f, err)
		}
	}
	return res
}

// A file against itself: the matrix is the package's, in depth order.
func TestSimilaritySelf(t *testing.T) {
	dir := t.TempDir()
	cols, rows := simData(40, 1)
	path := filepath.Join(dir, "f.parquet")
	writeSim(t, path, cols, rows, nil)
	out := filepath.Join(dir, "out")
	if _, errOut, code := run(t, "similarity", "--features", path, "--method", "cka", "--permutations", "9", "--out", out); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	got := readSimJSON(t, out)
	wantOrder := []string{"block1_mean", "block2_mean", "decoder"}
	if strings.Join(got.Columns, ",") != strings.Join(wantOrder, ",") || got.N != 40 || got.Method != "cka" {
		t.Fatalf("columns %v n %d method %s; want depth order %v, 40 rows", got.Columns, got.N, got.Method, wantOrder)
	}
	var reps []similarity.Representation
	for _, name := range wantOrder {
		for c, col := range cols {
			if col.Name == name {
				var data []float32
				for _, r := range rows {
					data = append(data, r.vecs[c]...)
				}
				reps = append(reps, similarity.Representation{Name: name, Data: data, Dim: col.Dim})
			}
		}
	}
	want, err := similarity.Compare(reps, nil, similarity.Options{Method: similarity.CKA})
	if err != nil {
		t.Fatal(err)
	}
	for i := range wantOrder {
		for j := range wantOrder {
			if g := *got.Matrix[i][j]; math.Abs(g-want.Matrix[i][j]) > 1e-12 {
				t.Errorf("[%d][%d] = %v, want %v", i, j, g, want.Matrix[i][j])
			}
		}
	}
	if got.PValues == nil || *got.PValues[0][0] != 0.1 {
		t.Errorf("p-values %v: want 1/10 on the diagonal with 9 permutations", got.PValues)
	}
}

// --against with a folder of shards holding some of the same ids, in another order: rows are
// matched by id, so a column against its own copy scores 1.
func TestSimilarityAgainstMatchesIDs(t *testing.T) {
	dir := t.TempDir()
	cols, rows := simData(30, 2)
	a := filepath.Join(dir, "a.parquet")
	writeSim(t, a, cols, rows, nil)
	// B: rows 5…29 and one extra id, reversed, split over two parts.
	var bRows []simRow
	for i := len(rows) - 1; i >= 5; i-- {
		bRows = append(bRows, rows[i])
	}
	_, extra := simData(1, 9)
	extra[0].id = "only-in-b.png"
	bRows = append(bRows, extra[0])
	bDir := filepath.Join(dir, "b")
	os.Mkdir(bDir, 0o755)
	var parts [2][]simRow
	var idx [2][]int
	for k, r := range bRows {
		parts[k%2] = append(parts[k%2], r)
		idx[k%2] = append(idx[k%2], k)
	}
	for p := range parts {
		writeSim(t, probe.PartPath(filepath.Join(bDir, "b.parquet"), probe.Shard{K: p + 1, N: 2}), cols, parts[p], idx[p])
	}
	for _, m := range []string{"cka", "cka-debiased", "cka-rbf", "rsa"} {
		out := filepath.Join(dir, "out-"+m)
		_, errOut, code := run(t, "similarity", "--features", a, "--against", bDir, "--columns", "block1_mean,decoder", "--method", m, "--out", out)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", m, code, errOut)
		}
		if !strings.Contains(errOut, "25 rows matched by id") {
			t.Errorf("%s: stderr %q: want the matched count", m, errOut)
		}
		got := readSimJSON(t, out)
		if got.N != 25 || len(got.Columns) != 2 || len(got.AgainstColumns) != 2 {
			t.Fatalf("%s: n %d, columns %v × %v", m, got.N, got.Columns, got.AgainstColumns)
		}
		for i := range 2 {
			if v := *got.Matrix[i][i]; math.Abs(v-1) > 1e-6 {
				t.Errorf("%s: %s against its copy = %.8f, want 1", m, got.Columns[i], v)
			}
		}
	}
}

func TestSimilarityBadInput(t *testing.T) {
	dir := t.TempDir()
	cols, rows := simData(12, 3)
	a := filepath.Join(dir, "a.parquet")
	writeSim(t, a, cols, rows, nil)
	other := make([]simRow, len(rows))
	for i, r := range rows {
		other[i] = simRow{id: "x" + r.id, vecs: r.vecs}
	}
	b := filepath.Join(dir, "b.parquet")
	writeSim(t, b, cols, other, nil)
	c := filepath.Join(dir, "c.parquet")
	twoCols := make([]simRow, len(rows))
	for i, r := range rows {
		twoCols[i] = simRow{id: r.id, vecs: r.vecs[:2]}
	}
	writeSim(t, c, cols[:2], twoCols, nil) // no block1_mean
	withNaN := make([]simRow, len(rows))
	for i, r := range rows {
		withNaN[i] = simRow{id: r.id, vecs: [][]float32{r.vecs[0], slices.Clone(r.vecs[1]), r.vecs[2]}}
	}
	withNaN[4].vecs[1][2] = float32(math.NaN())
	nan := filepath.Join(dir, "nan.parquet")
	writeSim(t, nan, cols, withNaN, nil)
	small := filepath.Join(dir, "small.parquet")
	writeSim(t, small, cols, rows[:3], nil)
	out := filepath.Join(dir, "out")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--features", a, "--against", b}, "no common ids between " + a},
		{[]string{"--features", a, "--against", c, "--columns", "block1_mean"}, c + `: no column "block1_mean"`},
		{[]string{"--features", a, "--columns", "block9_mean"}, a + `: no column "block9_mean"`},
		{[]string{"--features", small, "--method", "cka-debiased"}, "cka-debiased needs at least 4 rows, have 3"},
		{[]string{"--features", a, "--method", "rsa", "--max-rows", "10"}, "12 rows exceed --max-rows 10: raise --max-rows, or add --seed S"},
		{[]string{"--features", a, "--method", "cca"}, `--method "cca"`},
		{[]string{"--features", a, "--method", "rsa", "--rdm", "manhattan"}, `rdm "manhattan"`},
		{[]string{"--features", a, "--against-columns", "decoder"}, "--against-columns needs --against"},
		{[]string{"--features", a, "--against", nan}, a + " against " + nan + ": similarity: block2_mean: row 4 feature 2 is NaN"},
	} {
		_, errOut, code := run(t, append([]string{"similarity", "--out", out}, tc.args...)...)
		lines := strings.Split(strings.TrimSpace(errOut), "\n")
		last := lines[len(lines)-1]
		if code != 1 || !strings.Contains(last, tc.want) || !strings.HasPrefix(last, "probe similarity: ") {
			t.Errorf("%v: exit %d, stderr %q; want one line containing %q", tc.args, code, errOut, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "similarity.json")); err == nil {
		t.Errorf("an output was written despite the errors")
	}
}

// --max-rows with --seed compares a seeded random subset.
func TestSimilaritySubset(t *testing.T) {
	dir := t.TempDir()
	cols, rows := simData(50, 4)
	a := filepath.Join(dir, "a.parquet")
	writeSim(t, a, cols, rows, nil)
	var first []byte
	for k := range 2 {
		out := filepath.Join(dir, fmt.Sprint("out", k))
		if _, errOut, code := run(t, "similarity", "--features", a, "--method", "rsa", "--max-rows", "20", "--seed", "7", "--out", out); code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		got := readSimJSON(t, out)
		if got.N != 20 || !got.Subsampled {
			t.Fatalf("n = %d subsampled %v, want 20 rows subsampled", got.N, got.Subsampled)
		}
		m, _ := json.Marshal(got.Matrix)
		if k == 0 {
			first = m
		} else if string(m) != string(first) {
			t.Errorf("two runs with one seed differ: %s vs %s", first, m)
		}
	}
}

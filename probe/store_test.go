package probe

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/apache/arrow/go/v15/parquet/file"
	"github.com/apache/arrow/go/v15/parquet/pqarrow"
)

var testCols = []Column{
	{Name: "logits", Dim: 3, Description: "decoder logits"},
	{Name: "cross_mean", Dim: 1024, Description: "mean over latents after cross-attention"},
	{Name: "one", Dim: 1},
}

// testRow builds a deterministic row whose vectors are raw random bit
// patterns (NaN payloads, infinities, subnormals, -0 included), so a
// round trip that converts or canonicalises floats is caught.
func testRow(i int, cols []Column) Row {
	r := Row{Index: i, ID: fmt.Sprintf("class-%d/ímg %04d.jpg", i%3, i)}
	if i%4 != 0 {
		r.HasLabel, r.Label = true, int64(i%3)
	}
	if i%5 != 0 {
		r.LabelName = fmt.Sprintf("class-%d", i%3)
	}
	if i%2 == 0 {
		r.Split = "train"
	}
	for _, c := range cols {
		// Values depend on the row and the column's name only, so any
		// selection or order of columns has well-defined expectations.
		rng := rand.New(rand.NewPCG(uint64(i), uint64(len(c.Name))<<32|uint64(c.Dim)))
		v := make([]float32, c.Dim)
		for k := range v {
			v[k] = math.Float32frombits(rng.Uint32())
		}
		special := []float32{float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.Copysign(0, -1)), math.Float32frombits(1), math.Float32frombits(0x7fc00001)}
		v[i%c.Dim] = special[i%len(special)]
		r.Vectors = append(r.Vectors, v)
	}
	return r
}

// writeRows writes rows with the given indices (in that order) and closes.
func writeRows(t *testing.T, path string, cols []Column, idx []int, opt WriterOptions) {
	t.Helper()
	w, err := Create(path, cols, opt)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range idx {
		if err := w.Write(testRow(i, cols)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// checkTable compares a loaded table with testRow(i) for the given indices,
// bit for bit.
func checkTable(t *testing.T, tab *Table, cols []Column, idx []int) {
	t.Helper()
	if tab.Len() != len(idx) {
		t.Fatalf("table has %d rows, want %d", tab.Len(), len(idx))
	}
	if !reflect.DeepEqual(tab.Columns, cols) {
		t.Fatalf("columns %v, want %v", tab.Columns, cols)
	}
	for n, i := range idx {
		want := testRow(i, cols)
		got := Row{Index: int(tab.Index[n]), ID: tab.IDs[n], Label: tab.Labels[n], HasLabel: tab.HasLabel[n], LabelName: tab.LabelNames[n], Split: tab.Splits[n]}
		if !want.HasLabel {
			want.Label = 0
		}
		for j, c := range cols {
			got.Vectors = append(got.Vectors, tab.Vectors[j][n*c.Dim:(n+1)*c.Dim])
		}
		if got.Index != want.Index || got.ID != want.ID || got.Label != want.Label || got.HasLabel != want.HasLabel || got.LabelName != want.LabelName || got.Split != want.Split {
			t.Fatalf("row %d: got %+v, want %+v", n, got.fixed(), want.fixed())
		}
		for j := range cols {
			for k, x := range want.Vectors[j] {
				if math.Float32bits(got.Vectors[j][k]) != math.Float32bits(x) {
					t.Fatalf("row %d column %s value %d: bits %#x, want %#x", n, cols[j].Name, k, math.Float32bits(got.Vectors[j][k]), math.Float32bits(x))
				}
			}
		}
	}
}

func (r Row) fixed() Row { r.Vectors = nil; return r }

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

func TestRoundTripBitIdentical(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "emb.parquet")
	n := 300
	order := rand.New(rand.NewPCG(1, 2)).Perm(n)
	// ~4 KiB rows and 64 KiB groups: many checkpoints and row groups.
	writeRows(t, path, testCols, order, WriterOptions{RowGroupBytes: 64 << 10, Metadata: map[string]string{"model": "deepmind/vision-perceiver-fourier"}})

	if _, err := os.Stat(PartialDir(path)); !os.IsNotExist(err) {
		t.Fatalf("checkpoint folder left behind: %v", err)
	}
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.NumRows() != n {
		t.Fatalf("NumRows %d, want %d", r.NumRows(), n)
	}
	if !reflect.DeepEqual(r.Columns(), testCols) {
		t.Fatalf("Columns %v, want %v", r.Columns(), testCols)
	}
	tab, err := r.Load()
	if err != nil {
		t.Fatal(err)
	}
	checkTable(t, tab, testCols, seq(n)) // rows come back ordered by index

	// A subset of columns, in the caller's order.
	sub, err := r.Load("one", "logits")
	if err != nil {
		t.Fatal(err)
	}
	checkTable(t, sub, []Column{testCols[2], testCols[0]}, seq(n))

	// Batches see the same rows in the same order.
	var got []int
	err = r.Batches(7, []string{"logits"}, func(b *Table) error {
		if b.Len() > 7 {
			t.Errorf("batch of %d rows, want <= 7", b.Len())
		}
		checkTable(t, b, testCols[:1], seq(n)[len(got):len(got)+b.Len()])
		for _, i := range b.Index {
			got = append(got, int(i))
		}
		return nil
	})
	if err != nil || len(got) != n {
		t.Fatalf("Batches: %d rows, err %v", len(got), err)
	}
}

// TestFileReadsWithPlainArrow checks the file with pqarrow alone, as any
// other Parquet reader would see it: FixedSizeList<float32> columns with
// their values, nullable label columns, several row groups.
func TestFileReadsWithPlainArrow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "emb.parquet")
	n := 50
	writeRows(t, path, testCols, seq(n), WriterOptions{RowGroupBytes: 32 << 10})

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pr, err := file.NewParquetReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if pr.NumRowGroups() < 3 {
		t.Errorf("%d row groups, want several for %d rows of ~4 KiB in 32 KiB groups", pr.NumRowGroups(), n)
	}
	for g := 0; g < pr.NumRowGroups(); g++ {
		// A group closes at the first row that reaches the size.
		if b := pr.MetaData().RowGroup(g).TotalByteSize(); b > 2*(32<<10)+8192 {
			t.Errorf("row group %d holds %d bytes, want about 32 KiB", g, b)
		}
	}
	tbl, err := pqarrow.ReadTable(context.Background(), f, nil, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	want := []string{"id", "index", "label", "label_name", "split", "logits", "cross_mean", "one"}
	for i, name := range want {
		if fld := tbl.Schema().Field(i); fld.Name != name {
			t.Fatalf("field %d is %q, want %q", i, fld.Name, name)
		}
	}
	col := tbl.Column(6)
	if !arrow.TypeEqual(col.DataType(), arrow.FixedSizeListOf(1024, arrow.PrimitiveTypes.Float32)) {
		t.Fatalf("cross_mean type %s", col.DataType())
	}
	row := 0
	for _, chunk := range col.Data().Chunks() {
		fsl := chunk.(*array.FixedSizeList)
		vals := fsl.ListValues().(*array.Float32).Float32Values()
		for i := 0; i < fsl.Len(); i++ {
			w := testRow(row, testCols).Vectors[1]
			g := vals[(fsl.Data().Offset()+i)*1024 : (fsl.Data().Offset()+i+1)*1024]
			for k := range w {
				if math.Float32bits(g[k]) != math.Float32bits(w[k]) {
					t.Fatalf("row %d value %d differs", row, k)
				}
			}
			row++
		}
	}
	labels := tbl.Column(2).Data().Chunk(0).(*array.Int64)
	if labels.IsValid(0) || !labels.IsValid(1) || labels.Value(1) != 1 {
		t.Errorf("label column: row 0 valid=%v, row 1 = %d", labels.IsValid(0), labels.Value(1))
	}
}

func TestMetadata(t *testing.T) {
	path := filepath.Join(t.TempDir(), "emb.parquet")
	meta := map[string]string{
		"model":          "deepmind/vision-perceiver-fourier",
		"weights_sha256": strings.Repeat("ab", 32),
		"config":         `{"d_latents":1024,"num_latents":512}`,
		"preprocessor":   `{"crop_size":256,"size":224}`,
		"version":        "0.1.0",
		"created":        "2026-11-26T00:00:00Z",
	}
	writeRows(t, path, testCols, seq(3), WriterOptions{Metadata: meta})
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := r.Metadata()
	for k, v := range meta {
		if got[k] != v {
			t.Errorf("metadata %q = %q, want %q", k, got[k], v)
		}
	}
	for _, k := range []string{"config", "preprocessor", MetaColumns} {
		if !json.Valid([]byte(got[k])) {
			t.Errorf("metadata %q is not valid JSON: %s", k, got[k])
		}
	}
	var cols []Column
	if err := json.Unmarshal([]byte(got[MetaColumns]), &cols); err != nil || !reflect.DeepEqual(cols, testCols) {
		t.Errorf("column descriptions %v (%v), want %v", cols, err, testCols)
	}
	if _, err := Create(filepath.Join(t.TempDir(), "x.parquet"), testCols, WriterOptions{Metadata: map[string]string{MetaColumns: "x"}}); err == nil {
		t.Error("reserved metadata key accepted")
	}
}

// TestConcurrentWriters writes from several goroutines, as extraction
// workers do, and checks that the file holds every row once, in index order.
func TestConcurrentWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "emb.parquet")
	w, err := Create(path, testCols, WriterOptions{RowGroupBytes: 48 << 10})
	if err != nil {
		t.Fatal(err)
	}
	const n, workers = 240, 4
	errs := make(chan error, workers)
	for k := 0; k < workers; k++ {
		go func(k int) {
			var err error
			for i := k; i < n && err == nil; i += workers {
				if r := testRow(i, testCols); !w.Done(r.ID) {
					err = w.Write(r)
				}
			}
			errs <- err
		}(k)
	}
	for k := 0; k < workers; k++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	tab, err := r.Load()
	if err != nil {
		t.Fatal(err)
	}
	checkTable(t, tab, testCols, seq(n))
}

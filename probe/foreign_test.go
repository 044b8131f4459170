package probe

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/apache/arrow/go/v15/parquet/pqarrow"
)

// writeRawNPY writes a version-1.0 .npy file with the given header fields and raw data.
func writeRawNPY(t *testing.T, path, descr string, fortran bool, shape string, data []byte) {
	t.Helper()
	f := "False"
	if fortran {
		f = "True"
	}
	dict := fmt.Sprintf("{'descr': '%s', 'fortran_order': %s, 'shape': %s, }", descr, f, shape)
	total := (10 + len(dict) + 1 + 63) / 64 * 64
	header := dict + strings.Repeat(" ", total-10-len(dict)-1) + "\n"
	b := append([]byte("\x93NUMPY\x01\x00"), byte(len(header)), byte(len(header)>>8))
	b = append(b, header...)
	b = append(b, data...)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func f32bytes(v ...float32) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

func writeText(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFloat16(t *testing.T) {
	for _, c := range []struct {
		h    uint16
		want float32
	}{
		{0x3c00, 1}, {0xc000, -2}, {0x7bff, 65504}, {0x0001, 0x1p-24}, {0x03ff, 1023 * 0x1p-24},
		{0x0400, 0x1p-14}, {0x3555, 0.333251953125}, {0x7c00, float32(math.Inf(1))}, {0xfc00, float32(math.Inf(-1))},
	} {
		if got := Float16(c.h); got != c.want {
			t.Errorf("Float16(%#04x) = %v, want %v", c.h, got, c.want)
		}
	}
	if v := Float16(0x7e00); v == v {
		t.Errorf("Float16(0x7e00) = %v, want NaN", v)
	}
	if v := Float16(0x8000); v != 0 || !math.Signbit(float64(v)) {
		t.Errorf("Float16(0x8000) = %v, want -0", v)
	}
}

// The committed fixtures (tools/similarity/reference.py, numpy's np.save): a float32 array with
// NAME.ids.txt, a float64 one with export's ids.txt (`id<TAB>split`, CRLF).
func TestReadNPYFeaturesFixtures(t *testing.T) {
	f, err := ReadNPYFeatures("../testdata/similarity/vit.npy")
	if err != nil {
		t.Fatal(err)
	}
	if f.Name != "vit" || f.DType != "float32" || f.Dim != 40 || len(f.IDs) != 235 || len(f.Data) != 235*40 || f.Exact != nil {
		t.Fatalf("vit.npy: name %q dtype %s dim %d rows %d", f.Name, f.DType, f.Dim, len(f.IDs))
	}
	g, err := ReadNPYFeatures("../testdata/similarity/vit64/dino.npy")
	if err != nil {
		t.Fatal(err)
	}
	if g.DType != "float64" || g.Dim != 12 || len(g.IDs) != 240 || g.IDs[0] != "img/0239.png" || g.IDs[239] != "img/0000.png" {
		t.Fatalf("dino.npy: dtype %s dim %d rows %d ids %q … %q", g.DType, g.Dim, len(g.IDs), g.IDs[0], g.IDs[len(g.IDs)-1])
	}
	for i, v := range g.Exact {
		if g.Data[i] != float32(v) {
			t.Fatalf("value %d: Data %v is not Exact %v rounded", i, g.Data[i], v)
		}
	}
	tab := g.Table()
	if tab.Len() != 240 || tab.Columns[0].Name != "dino" || len(tab.Vectors[0]) != 240*12 {
		t.Fatalf("Table: %d rows, columns %v", tab.Len(), tab.Columns)
	}
}

func TestReadNPYFeaturesErrors(t *testing.T) {
	dir := t.TempDir()
	two := f32bytes(1, 2, 3, 4, 5, 6)
	cases := []struct {
		name, descr, shape string
		fortran            bool
		data               []byte
		ids                string
		want               string
	}{
		{"fortran", "<f4", "(2, 3)", true, two, "a\nb\n", "Fortran"},
		{"int", "<i8", "(2, 3)", false, make([]byte, 48), "a\nb\n", `dtype "<i8"`},
		{"big", ">f4", "(2, 3)", false, two, "a\nb\n", "big-endian"},
		{"cube", "<f4", "(1, 2, 3)", false, two, "a\n", "2-D"},
		{"short", "<f4", "(2, 3)", false, two[:20], "a\nb\n", "truncated"},
		{"count", "<f4", "(2, 3)", false, two, "a\nb\nc\n", "3 ids for the 2 rows"},
		{"dups", "<f4", "(3, 2)", false, two, "a\nb\na\n", "1 duplicate ids among 3 rows"},
		{"empty", "<f4", "(2, 3)", false, two, "a\n\n", "empty id"},
	}
	for _, c := range cases {
		sub := filepath.Join(dir, c.name)
		writeRawNPY(t, filepath.Join(sub, "x.npy"), c.descr, c.fortran, c.shape, c.data)
		writeText(t, filepath.Join(sub, "x.ids.txt"), c.ids)
		_, err := ReadNPYFeatures(filepath.Join(sub, "x.npy"))
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %v, want one line containing %q", c.name, err, c.want)
		}
	}
	// No ids file at all.
	writeRawNPY(t, filepath.Join(dir, "noids", "x.npy"), "<f4", false, "(2, 3)", two)
	if _, err := ReadNPYFeatures(filepath.Join(dir, "noids", "x.npy")); err == nil || !strings.Contains(err.Error(), "none of x.ids.txt, ids.txt") {
		t.Errorf("no ids: %v", err)
	}
	// NAME.ids.txt wins over ids.txt; TAB and CRLF are stripped.
	sub := filepath.Join(dir, "both")
	writeRawNPY(t, filepath.Join(sub, "x.npy"), "<f4", false, "(2, 3)", two)
	writeText(t, filepath.Join(sub, "ids.txt"), "wrong\nwrong2\n")
	writeText(t, filepath.Join(sub, "x.ids.txt"), "p/1.png\ttrain\r\np/2.png\r\n")
	f, err := ReadNPYFeatures(filepath.Join(sub, "x.npy"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(f.IDs, ",") != "p/1.png,p/2.png" || f.Data[5] != 6 {
		t.Errorf("ids %q data %v", f.IDs, f.Data)
	}
}

// writeClipMeta writes a metadata parquet with one string column.
func writeClipMeta(t *testing.T, path, column string, ids []string) {
	t.Helper()
	schema := arrow.NewSchema([]arrow.Field{{Name: column, Type: arrow.BinaryTypes.String, Nullable: true}}, nil)
	rb := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	for _, id := range ids {
		rb.Field(0).(*array.StringBuilder).Append(id)
	}
	tbl := array.NewTableFromRecords(schema, []arrow.Record{rb.NewRecord()})
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := pqarrow.WriteTable(tbl, f, 1024, nil, pqarrow.DefaultWriterProps()); err != nil {
		t.Fatal(err)
	}
}

// The committed clip-retrieval fixture: two float16 parts, ids from image_path.
func TestReadClipRetrievalFixture(t *testing.T) {
	f, err := ReadClipRetrieval("../testdata/similarity/clip")
	if err != nil {
		t.Fatal(err)
	}
	if f.Name != "img_emb" || f.DType != "float16" || f.Dim != 48 || len(f.IDs) != 230 || len(f.Parts) != 2 || !IsForeign("../testdata/similarity/clip") {
		t.Fatalf("name %q dtype %s dim %d rows %d parts %v", f.Name, f.DType, f.Dim, len(f.IDs), f.Parts)
	}
	// clip-retrieval stores unit-normalised embeddings rounded to float16.
	for i := range len(f.IDs) {
		s := 0.0
		for _, v := range f.Data[i*48 : (i+1)*48] {
			s += float64(v) * float64(v)
		}
		if math.Abs(math.Sqrt(s)-1) > 2e-3 {
			t.Fatalf("row %d (%s): norm %v, want 1 (float16 of a unit vector)", i, f.IDs[i], math.Sqrt(s))
		}
	}
}

func TestReadClipRetrievalErrors(t *testing.T) {
	mk := func(name string, parts []struct {
		tag, col  string
		rows, dim int
		dtype     string
		ids       []string
	}) string {
		dir := filepath.Join(t.TempDir(), name)
		for _, p := range parts {
			size := map[string]int{"<f2": 2, "<f4": 4}[p.dtype]
			writeRawNPY(t, filepath.Join(dir, "img_emb", "img_emb_"+p.tag+".npy"), p.dtype, false, fmt.Sprintf("(%d, %d)", p.rows, p.dim), make([]byte, p.rows*p.dim*size))
			if p.ids != nil {
				writeClipMeta(t, filepath.Join(dir, "metadata", "metadata_"+p.tag+".parquet"), p.col, p.ids)
			}
		}
		return dir
	}
	type part = struct {
		tag, col  string
		rows, dim int
		dtype     string
		ids       []string
	}
	ok := mk("key", []part{{"1", "key", 2, 4, "<f2", []string{"c", "d"}}, {"0", "key", 2, 4, "<f2", []string{"a", "b"}}})
	f, err := ReadClipRetrieval(ok)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(f.IDs, ",") != "a,b,c,d" {
		t.Errorf("ids %v: want parts in suffix order, from key", f.IDs)
	}
	for _, c := range []struct {
		dir, want string
	}{
		{mk("dim", []part{{"0", "image_path", 2, 4, "<f2", []string{"a", "b"}}, {"1", "image_path", 2, 5, "<f2", []string{"c", "d"}}}), "5 features of float16, but"},
		{mk("dtype", []part{{"0", "image_path", 2, 4, "<f2", []string{"a", "b"}}, {"1", "image_path", 2, 4, "<f4", []string{"c", "d"}}}), "4 features of float32, but"},
		{mk("nometa", []part{{"0", "image_path", 2, 4, "<f2", []string{"a", "b"}}, {"1", "image_path", 2, 4, "<f2", nil}}), "metadata_1.parquet: missing"},
		{mk("rows", []part{{"0", "image_path", 2, 4, "<f2", []string{"a", "b", "c"}}}), "3 rows, but"},
		{mk("nocol", []part{{"0", "caption", 2, 4, "<f2", []string{"a", "b"}}}), "no image_path or key column"},
		{mk("dups", []part{{"0", "image_path", 2, 4, "<f2", []string{"a", "b"}}, {"1", "image_path", 2, 4, "<f2", []string{"b", "c"}}}), "1 duplicate ids among 4 rows"},
	} {
		_, err := ReadClipRetrieval(c.dir)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %v, want one line containing %q", filepath.Base(c.dir), err, c.want)
		}
	}
}

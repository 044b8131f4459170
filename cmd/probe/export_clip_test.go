package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/apache/arrow/go/v15/parquet/file"
	"github.com/apache/arrow/go/v15/parquet/pqarrow"
	"github.com/x448/float16"
)

// readNPY reads a 2-D little-endian float32 or float16 .npy file as float32, checking the header
// as numpy's format.read_array_header_1_0 would.
func readNPY(t *testing.T, path string) ([]float32, [2]int, string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(raw[:6]) != "\x93NUMPY" || raw[6] != 1 || raw[7] != 0 {
		t.Fatalf("%s: not a version 1.0 .npy file", path)
	}
	n := int(binary.LittleEndian.Uint16(raw[8:10]))
	header := string(raw[10 : 10+n])
	if (10+n)%64 != 0 || !strings.HasSuffix(header, "\n") {
		t.Errorf("%s: data starts at %d, not a multiple of 64", path, 10+n)
	}
	var descr string
	var shape [2]int
	if _, err := fmt.Sscanf(strings.ReplaceAll(header, " ", ""), "{'descr':'%3s','fortran_order':False,'shape':(%d,%d),}", &descr, &shape[0], &shape[1]); err != nil {
		t.Fatalf("%s: header %q: %v", path, header, err)
	}
	body := raw[10+n:]
	out := make([]float32, shape[0]*shape[1])
	switch descr {
	case "<f4":
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(body[4*i:]))
		}
	case "<f2":
		for i := range out {
			out[i] = float16.Frombits(binary.LittleEndian.Uint16(body[2*i:])).Float32()
		}
	default:
		t.Fatalf("%s: dtype %s", path, descr)
	}
	if len(body) != len(out)*map[string]int{"<f4": 4, "<f2": 2}[descr] {
		t.Errorf("%s: %d data bytes for shape %v", path, len(body), shape)
	}
	return out, shape, descr
}

// readMetadata reads a metadata part with arrow's Parquet reader: column names and the
// image_path and label columns.
func readMetadata(t *testing.T, path string) (cols []string, paths []string, labels []int64) {
	t.Helper()
	f, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fr, err := pqarrow.NewFileReader(f, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tab, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tab.Release()
	for i := range int(tab.NumCols()) {
		cols = append(cols, tab.Schema().Field(i).Name)
	}
	for _, ch := range tab.Column(0).Data().Chunks() {
		s := ch.(*array.String)
		for i := range s.Len() {
			paths = append(paths, s.Value(i))
		}
	}
	for _, ch := range tab.Column(1).Data().Chunks() {
		s := ch.(*array.Int64)
		for i := range s.Len() {
			labels = append(labels, s.Value(i))
		}
	}
	return cols, paths, labels
}

// TestExportClipRetrieval: the layout clip-retrieval's tools read (clip_index hands
// OUT/img_emb to autofaiss, which reads the sorted *.npy files as one matrix; clip_back
// concatenates the sorted metadata/*.parquet files and takes row i as embedding i's): read back
// that way, the parts give the store's vectors and ids in order, image_path first, with the
// names zero-padded to the part count (13 parts: img_emb_00 … img_emb_12). Float16 rounds each
// value to nearest. numpy (when /usr/bin/python3 has it) loads the parts as clip-retrieval does
// (np.load); the metadata is read back with arrow's Go Parquet reader (pyarrow is not installable
// here).
func TestExportClipRetrieval(t *testing.T) {
	features := filepath.Join(t.TempDir(), "f.parquet")
	if _, e, code := run(t, "extract", "--model", tinyDir, "--data", idxDataSet(t, 25), "--out", features, "--layers", "decoder,logits", "--quiet"); code != 0 {
		t.Fatal(e)
	}
	tab, _ := loadTable(t, features)
	want, dim, _ := tab.Vector("decoder")

	out := filepath.Join(t.TempDir(), "clip")
	if _, e, code := run(t, "export", "--features", features, "--format", "clip-retrieval", "--out", out); code != 1 || !strings.Contains(e, "one embedding column") {
		t.Errorf("two columns, none chosen: exit %d, %q", code, e)
	}
	for _, dtype := range []string{"float32", "float16"} {
		out := filepath.Join(t.TempDir(), "clip-"+dtype)
		stdout, e, code := run(t, "export", "--features", features, "--format", "clip-retrieval", "--columns", "decoder", "--rows-per-file", "2", "--dtype", dtype, "--out", out)
		if code != 0 {
			t.Fatal(e)
		}
		embs, _ := filepath.Glob(filepath.Join(out, "img_emb", "*.npy"))
		metas, _ := filepath.Glob(filepath.Join(out, "metadata", "*.parquet"))
		slices.Sort(embs)
		slices.Sort(metas)
		if len(embs) != 13 || len(metas) != 13 || filepath.Base(embs[12]) != "img_emb_12.npy" || filepath.Base(metas[0]) != "metadata_00.parquet" {
			t.Fatalf("parts %v %v; stdout %s", embs, metas, stdout)
		}
		var got []float32
		var ids []string
		var labels []int64
		for k := range embs {
			v, shape, _ := readNPY(t, embs[k])
			cols, p, l := readMetadata(t, metas[k])
			if shape[1] != dim || shape[0] != len(p) || !slices.Equal(cols, []string{"image_path", "label", "label_name", "split", "index"}) {
				t.Errorf("part %d: shape %v, %d metadata rows, columns %q", k, shape, len(p), cols)
			}
			got, ids, labels = append(got, v...), append(ids, p...), append(labels, l...)
		}
		if !slices.Equal(ids, tab.IDs) || !slices.Equal(labels, tab.Labels) {
			t.Errorf("metadata rows %q %v, want %q %v", ids, labels, tab.IDs, tab.Labels)
		}
		for i, w := range want {
			if dtype == "float16" {
				w = float16.Fromfloat32(w).Float32()
			}
			if got[i] != w {
				t.Fatalf("%s: value %d = %g, want %g", dtype, i, got[i], w)
			}
		}
		checkClipWithNumpy(t, out, len(want)/dim, dim, dtype, want)
	}

	// Refusals: existing parts without --force; a stale part of an earlier, longer export even
	// with it; --force replaces the parts in place.
	out = filepath.Join(t.TempDir(), "clip")
	args := []string{"export", "--features", features, "--format", "clip-retrieval", "--columns", "decoder", "--out", out, "--rows-per-file", "10"}
	if _, e, code := run(t, args...); code != 0 {
		t.Fatal(e)
	}
	if _, e, code := run(t, args...); code != 1 || !strings.Contains(e, "already exists") {
		t.Errorf("rerun: exit %d, %q", code, e)
	}
	if _, e, code := run(t, append(args, "--force")...); code != 0 {
		t.Errorf("--force: exit %d, %q", code, e)
	}
	os.WriteFile(filepath.Join(out, "img_emb", "img_emb_7.npy"), nil, 0o644)
	if _, e, code := run(t, append(args, "--force")...); code != 1 || !strings.Contains(e, "img_emb_7.npy is not a part of this export") {
		t.Errorf("stale part: exit %d, %q", code, e)
	}
	if hidden, _ := filepath.Glob(filepath.Join(out, "*", ".*")); len(hidden) > 0 {
		t.Errorf("temporaries left: %v", hidden)
	}
}

// checkClipWithNumpy loads the parts as autofaiss does (np.load of each sorted .npy, then
// concatenated) and compares shape, dtype and values with want (rounded to float16 for float16).
func checkClipWithNumpy(t *testing.T, out string, rows, dim int, dtype string, want []float32) {
	t.Helper()
	py := "/usr/bin/python3"
	if exec.Command(py, "-c", "import numpy").Run() != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("CI must have python3-numpy to check the export from Python")
		}
		t.Log("no numpy under /usr/bin/python3: Python readability not checked here")
		return
	}
	wantPath := filepath.Join(t.TempDir(), "want.json")
	b, _ := json.Marshal(want)
	os.WriteFile(wantPath, b, 0o644)
	script := `
import glob, json, sys
import numpy as np
out, rows, dim, dtype, want = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
parts = [np.load(f) for f in sorted(glob.glob(out + "/img_emb/*.npy"))]
x = np.concatenate(parts)
assert x.shape == (rows, dim), x.shape
assert x.dtype == np.dtype(dtype), x.dtype
w = np.array(json.load(open(want)), dtype=np.float32).astype(dtype).reshape(rows, dim)
assert np.array_equal(x, w), np.abs(x.astype(np.float64) - w).max()
print("ok", x.shape, x.dtype)
`
	res, err := exec.Command(py, "-c", script, out, fmt.Sprint(rows), fmt.Sprint(dim), dtype, wantPath).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(res), "ok") {
		t.Errorf("numpy: %v\n%s", err, res)
	}
}

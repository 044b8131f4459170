package probe

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/apache/arrow/go/v15/parquet/file"
	"github.com/apache/arrow/go/v15/parquet/pqarrow"
)

// Foreign is a matrix of features made by another tool (a NumPy .npy with an ids file, or a
// clip-retrieval output folder), with the id of each row.
type Foreign struct {
	Path  string   // the file or folder read
	Name  string   // the column's name: NAME of NAME.npy, or "img_emb"
	Kind  string   // "npy" or "clip-retrieval"
	DType string   // "float16", "float32" or "float64", as stored
	IDs   []string // one per row
	Dim   int
	// Data holds the rows [len(IDs), Dim], row-major; exact for float16 and float32 sources.
	Data []float32
	// Exact holds the values of a float64 source as stored (Data holds them rounded); nil for
	// the other dtypes.
	Exact []float64
	Parts []string // the array files read, in order
}

// IsForeign reports whether path names foreign features: a file ending in .npy, or a folder
// holding img_emb/ (clip-retrieval's output).
func IsForeign(path string) bool {
	if strings.EqualFold(filepath.Ext(path), ".npy") {
		return true
	}
	st, err := os.Stat(filepath.Join(path, "img_emb"))
	return err == nil && st.IsDir()
}

// ReadForeign reads a .npy file (ReadNPYFeatures) or a clip-retrieval folder (ReadClipRetrieval).
func ReadForeign(path string) (*Foreign, error) {
	if strings.EqualFold(filepath.Ext(path), ".npy") {
		return ReadNPYFeatures(path)
	}
	return ReadClipRetrieval(path)
}

// Table returns f as a Table of one column named f.Name, with its ids and no labels.
func (f *Foreign) Table() *Table {
	n := len(f.IDs)
	t := &Table{
		Index:      make([]int64, n),
		IDs:        f.IDs,
		Labels:     make([]int64, n),
		HasLabel:   make([]bool, n),
		LabelNames: make([]string, n),
		Splits:     make([]string, n),
		Columns:    []Column{{Name: f.Name, Dim: f.Dim}},
		Vectors:    [][]float32{f.Data},
	}
	for i := range t.Index {
		t.Index[i] = int64(i)
	}
	return t
}

// npyArray is a decoded .npy header.
type npyArray struct {
	dtype      string // float16, float32, float64
	size       int    // bytes per value
	rows, cols int
	offset     int64 // where the data starts
}

var (
	npyDescr   = regexp.MustCompile(`'descr'\s*:\s*'([^']*)'`)
	npyFortran = regexp.MustCompile(`'fortran_order'\s*:\s*(True|False)`)
	npyShape   = regexp.MustCompile(`'shape'\s*:\s*\(([^)]*)\)`)
)

// readNPYHeader parses the header of a .npy file (format versions 1, 2 and 3) and checks that it
// holds a 2-D C-order little-endian float16, float32 or float64 array whose data fill the file.
func readNPYHeader(path string, f *os.File) (*npyArray, error) {
	var pre [8]byte
	if _, err := io.ReadFull(f, pre[:]); err != nil || string(pre[:6]) != "\x93NUMPY" {
		return nil, fmt.Errorf("%s: not a NumPy .npy file (no \\x93NUMPY magic)", path)
	}
	var hlen int
	switch pre[6] {
	case 1:
		var b [2]byte
		if _, err := io.ReadFull(f, b[:]); err != nil {
			return nil, fmt.Errorf("%s: truncated .npy header", path)
		}
		hlen = int(binary.LittleEndian.Uint16(b[:]))
	case 2, 3:
		var b [4]byte
		if _, err := io.ReadFull(f, b[:]); err != nil {
			return nil, fmt.Errorf("%s: truncated .npy header", path)
		}
		hlen = int(binary.LittleEndian.Uint32(b[:]))
	default:
		return nil, fmt.Errorf("%s: .npy format version %d.%d: want 1, 2 or 3", path, pre[6], pre[7])
	}
	if hlen > 1<<20 {
		return nil, fmt.Errorf("%s: .npy header of %d bytes: not a feature matrix", path, hlen)
	}
	h := make([]byte, hlen)
	if _, err := io.ReadFull(f, h); err != nil {
		return nil, fmt.Errorf("%s: truncated .npy header", path)
	}
	a := &npyArray{offset: int64(len(pre)) + int64(hlen)}
	if pre[6] == 1 {
		a.offset += 2
	} else {
		a.offset += 4
	}
	m := npyDescr.FindSubmatch(h)
	if m == nil {
		return nil, fmt.Errorf("%s: .npy header has no 'descr': %q", path, bytes.TrimSpace(h))
	}
	switch descr := string(m[1]); descr {
	case "<f2":
		a.dtype, a.size = "float16", 2
	case "<f4":
		a.dtype, a.size = "float32", 4
	case "<f8":
		a.dtype, a.size = "float64", 8
	case ">f2", ">f4", ">f8":
		return nil, fmt.Errorf("%s: dtype %q is big-endian: save it little-endian (arr.astype(arr.dtype.newbyteorder('<')))", path, descr)
	default:
		return nil, fmt.Errorf("%s: dtype %q: want float16, float32 or float64 ('<f2', '<f4', '<f8')", path, descr)
	}
	m = npyFortran.FindSubmatch(h)
	if m == nil {
		return nil, fmt.Errorf("%s: .npy header has no 'fortran_order'", path)
	}
	if string(m[1]) == "True" {
		return nil, fmt.Errorf("%s: array is in Fortran (column-major) order: save np.ascontiguousarray(arr) instead", path)
	}
	m = npyShape.FindSubmatch(h)
	if m == nil {
		return nil, fmt.Errorf("%s: .npy header has no 'shape'", path)
	}
	var dims []int
	for _, s := range strings.Split(string(m[1]), ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("%s: .npy shape (%s): not a list of sizes", path, m[1])
		}
		dims = append(dims, v)
	}
	if len(dims) != 2 {
		return nil, fmt.Errorf("%s: .npy shape (%s): want a 2-D array [rows, features]", path, m[1])
	}
	a.rows, a.cols = dims[0], dims[1]
	if a.rows == 0 || a.cols == 0 {
		return nil, fmt.Errorf("%s: .npy shape (%d, %d) is empty", path, a.rows, a.cols)
	}
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if a.rows > math.MaxInt64/a.cols/a.size {
		return nil, fmt.Errorf("%s: .npy shape (%d, %d) is too large", path, a.rows, a.cols)
	}
	if want := a.offset + int64(a.rows*a.cols*a.size); st.Size() != want {
		return nil, fmt.Errorf("%s: %d bytes, but a (%d, %d) %s array needs %d: truncated or not this shape", path, st.Size(), a.rows, a.cols, a.dtype, want)
	}
	return a, nil
}

// readNPYData reads the array's values into dst32 (and dst64 for float64) in chunks.
func readNPYData(path string, f *os.File, a *npyArray, dst32 []float32, dst64 []float64) error {
	if _, err := f.Seek(a.offset, io.SeekStart); err != nil {
		return err
	}
	r := bufio.NewReaderSize(f, 1<<20)
	buf := make([]byte, 1<<16*a.size)
	total := a.rows * a.cols
	for lo := 0; lo < total; lo += 1 << 16 {
		hi := min(lo+1<<16, total)
		b := buf[:(hi-lo)*a.size]
		if _, err := io.ReadFull(r, b); err != nil {
			return fmt.Errorf("%s: reading values: %w", path, err)
		}
		switch a.size {
		case 2:
			for i := range hi - lo {
				dst32[lo+i] = Float16(binary.LittleEndian.Uint16(b[2*i:]))
			}
		case 4:
			for i := range hi - lo {
				dst32[lo+i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
			}
		case 8:
			for i := range hi - lo {
				v := math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
				dst64[lo+i] = v
				dst32[lo+i] = float32(v)
			}
		}
	}
	return nil
}

// Float16 converts IEEE 754 binary16 bits to float32, exactly (subnormals, ±Inf and NaN included).
func Float16(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := int(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f: // Inf, NaN
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	case exp == 0:
		v := float32(mant) * 0x1p-24 // subnormal or zero: mant·2⁻²⁴, exact in float32
		if sign != 0 {
			v = -v
		}
		return v
	}
	return math.Float32frombits(sign | uint32(exp-15+127)<<23 | mant<<13)
}

// ReadNPYFeatures reads a 2-D .npy array [n, d] (float16, float32 or float64, C order, little
// endian) and its row ids: NAME.ids.txt beside NAME.npy, else ids.txt in the same folder (the
// layout of `probe export --format npy`), one id per line, the id being the text before the
// first TAB; the line count must equal n.
func ReadNPYFeatures(path string) (*Foreign, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	a, err := readNPYHeader(path, f)
	if err != nil {
		return nil, err
	}
	name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	var idsPath string
	for _, c := range []string{name + ".ids.txt", "ids.txt", "ids.jsonl"} {
		if _, err := os.Stat(filepath.Join(filepath.Dir(path), c)); err == nil {
			idsPath = filepath.Join(filepath.Dir(path), c)
			break
		}
	}
	if idsPath == "" {
		return nil, fmt.Errorf("%s: no ids: none of %s.ids.txt, ids.txt (one id per line, in row order) or ids.jsonl (probe export's, one {\"id\": …} per line) beside it", path, name)
	}
	read := readIDLines
	if strings.HasSuffix(idsPath, ".jsonl") {
		read = readIDJSONLines
	}
	ids, err := read(idsPath)
	if err != nil {
		return nil, err
	}
	if len(ids) != a.rows {
		return nil, fmt.Errorf("%s: %d ids for the %d rows of %s", idsPath, len(ids), a.rows, path)
	}
	if err := checkUniqueIDs(idsPath, ids); err != nil {
		return nil, err
	}
	out := &Foreign{Path: path, Name: name, Kind: "npy", DType: a.dtype, IDs: ids, Dim: a.cols, Parts: []string{path}}
	out.Data = make([]float32, a.rows*a.cols)
	if a.dtype == "float64" {
		out.Exact = make([]float64, a.rows*a.cols)
	}
	if err := readNPYData(path, f, a, out.Data, out.Exact); err != nil {
		return nil, err
	}
	return out, nil
}

// readIDJSONLines reads the "id" of one JSON object per line (probe export's ids.jsonl), so that
// ids holding tabs or newlines survive.
func readIDJSONLines(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var ids []string
	for i, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		var row struct {
			ID *string `json:"id"`
		}
		if err := json.Unmarshal([]byte(l), &row); err != nil || row.ID == nil {
			return nil, fmt.Errorf("%s: line %d: want a JSON object with an \"id\"", path, i+1)
		}
		ids = append(ids, *row.ID)
	}
	if len(ids) == 0 || (len(ids) == 1 && ids[0] == "" && len(b) == 0) {
		return nil, fmt.Errorf("%s: no ids", path)
	}
	return ids, nil
}

// readIDLines reads one id per line (the text before the first TAB; "\r\n" accepted).
func readIDLines(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return nil, fmt.Errorf("%s: no ids", path)
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		l = strings.TrimSuffix(l, "\r")
		if t := strings.IndexByte(l, '\t'); t >= 0 {
			l = l[:t]
		}
		if l == "" {
			return nil, fmt.Errorf("%s: line %d: empty id", path, i+1)
		}
		lines[i] = l
	}
	return lines, nil
}

// checkUniqueIDs fails on the first id that appears twice, naming the file, the id, its lines
// and how many ids repeat.
func checkUniqueIDs(path string, ids []string) error {
	first := make(map[string]int, len(ids))
	dups, firstDup, at, again := 0, "", 0, 0
	for i, id := range ids {
		if j, ok := first[id]; ok {
			if dups == 0 {
				firstDup, at, again = id, j, i
			}
			dups++
			continue
		}
		first[id] = i
	}
	if dups > 0 {
		return fmt.Errorf("%s: %d duplicate ids among %d rows (first %q at rows %d and %d); rows cannot be matched", path, dups, len(ids), firstDup, at+1, again+1)
	}
	return nil
}

var clipPart = regexp.MustCompile(`^img_emb_([0-9]+)\.npy$`)

// ReadClipRetrieval reads clip-retrieval's inference output folder: every img_emb/img_emb_S.npy
// with metadata/metadata_S.parquet (the same suffix S), parts in the order of S, row r of an
// array being row r of its metadata. Ids come from the metadata column image_path, else key.
// Parts must agree in width and dtype; text_emb/ is ignored.
func ReadClipRetrieval(dir string) (*Foreign, error) {
	embDir := filepath.Join(dir, "img_emb")
	entries, err := os.ReadDir(embDir)
	if err != nil {
		return nil, fmt.Errorf("%s: not a clip-retrieval folder: %w", dir, err)
	}
	type part struct {
		s    int
		tag  string
		path string
	}
	var parts []part
	for _, e := range entries {
		m := clipPart.FindStringSubmatch(e.Name())
		if m == nil || e.IsDir() {
			continue
		}
		s, err := strconv.Atoi(m[1])
		if err != nil {
			return nil, fmt.Errorf("%s: partition suffix %q", filepath.Join(embDir, e.Name()), m[1])
		}
		parts = append(parts, part{s, m[1], filepath.Join(embDir, e.Name())})
	}
	if len(parts) == 0 {
		return nil, fmt.Errorf("%s: no img_emb_S.npy files", embDir)
	}
	slices.SortFunc(parts, func(a, b part) int { return a.s - b.s })
	for i := 1; i < len(parts); i++ {
		if parts[i].s == parts[i-1].s {
			return nil, fmt.Errorf("%s and %s: the same partition twice", parts[i-1].path, parts[i].path)
		}
	}
	metaDir := filepath.Join(dir, "metadata")
	if metas, err := os.ReadDir(metaDir); err == nil {
		for _, e := range metas {
			tag, ok := strings.CutPrefix(e.Name(), "metadata_")
			tag, ok2 := strings.CutSuffix(tag, ".parquet")
			if !ok || !ok2 {
				continue
			}
			if !slices.ContainsFunc(parts, func(p part) bool { return p.tag == tag }) {
				return nil, fmt.Errorf("%s has no img_emb/img_emb_%s.npy: an incomplete clip-retrieval output", filepath.Join(metaDir, e.Name()), tag)
			}
		}
	}

	out := &Foreign{Path: dir, Name: "img_emb", Kind: "clip-retrieval"}
	headers := make([]*npyArray, len(parts))
	files := make([]*os.File, len(parts))
	defer func() {
		for _, f := range files {
			if f != nil {
				f.Close()
			}
		}
	}()
	rows := 0
	for i, p := range parts {
		f, err := os.Open(p.path)
		if err != nil {
			return nil, err
		}
		files[i] = f
		a, err := readNPYHeader(p.path, f)
		if err != nil {
			return nil, err
		}
		if i > 0 && (a.cols != headers[0].cols || a.dtype != headers[0].dtype) {
			return nil, fmt.Errorf("%s: %d features of %s, but %s has %d of %s: parts of different runs", p.path, a.cols, a.dtype, parts[0].path, headers[0].cols, headers[0].dtype)
		}
		headers[i] = a
		metaPath := filepath.Join(metaDir, "metadata_"+p.tag+".parquet")
		ids, err := readClipIDs(metaPath)
		if err != nil {
			return nil, err
		}
		if len(ids) != a.rows {
			return nil, fmt.Errorf("%s: %d rows, but %s has %d", metaPath, len(ids), p.path, a.rows)
		}
		out.IDs = append(out.IDs, ids...)
		out.Parts = append(out.Parts, p.path)
		rows += a.rows
	}
	if err := checkUniqueIDs(dir, out.IDs); err != nil {
		return nil, err
	}
	out.Dim, out.DType = headers[0].cols, headers[0].dtype
	out.Data = make([]float32, rows*out.Dim)
	if out.DType == "float64" {
		out.Exact = make([]float64, rows*out.Dim)
	}
	at := 0
	for i, a := range headers {
		n := a.rows * a.cols
		var exact []float64
		if out.Exact != nil {
			exact = out.Exact[at : at+n]
		}
		if err := readNPYData(parts[i].path, files[i], a, out.Data[at:at+n], exact); err != nil {
			return nil, err
		}
		at += n
	}
	return out, nil
}

// readClipIDs reads the id column of one clip-retrieval metadata file: image_path, else key.
func readClipIDs(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: missing (every img_emb_S.npy needs its metadata_S.parquet)", path)
		}
		return nil, err
	}
	defer f.Close()
	pr, err := file.NewParquetReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer pr.Close()
	schema := pr.MetaData().Schema
	col, name := -1, ""
	for _, c := range []string{"image_path", "key"} {
		if i := schema.ColumnIndexByName(c); i >= 0 {
			col, name = i, c
			break
		}
	}
	if col < 0 {
		return nil, fmt.Errorf("%s: no image_path or key column to take the ids from", path)
	}
	fr, err := pqarrow.NewFileReader(pr, pqarrow.ArrowReadProperties{BatchSize: 1 << 14}, memory.DefaultAllocator)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	rr, err := fr.GetRecordReader(context.Background(), []int{col}, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: column %s: %w", path, name, err)
	}
	defer rr.Release()
	ids := make([]string, 0, pr.NumRows())
	for rr.Next() {
		rec := rr.Record()
		c := rec.Column(0)
		for i := range c.Len() {
			if c.IsNull(i) {
				return nil, fmt.Errorf("%s: column %s: row %d is null", path, name, len(ids)+1)
			}
			switch a := c.(type) {
			case *array.String:
				ids = append(ids, a.Value(i))
			case *array.LargeString:
				ids = append(ids, a.Value(i))
			case *array.Binary:
				ids = append(ids, string(a.Value(i)))
			default:
				return nil, fmt.Errorf("%s: column %s is %s: want strings", path, name, c.DataType())
			}
		}
	}
	if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: column %s: %w", path, name, err)
	}
	if len(ids) != int(pr.NumRows()) {
		return nil, fmt.Errorf("%s: read %d of %d rows of %s", path, len(ids), pr.NumRows(), name)
	}
	return ids, nil
}

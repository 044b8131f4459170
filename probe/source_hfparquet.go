package probe

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/apache/arrow/go/v15/parquet"
	"github.com/apache/arrow/go/v15/parquet/file"
	"github.com/apache/arrow/go/v15/parquet/pqarrow"
)

// Hugging Face datasets Parquet sources read the files `datasets` writes
// (Dataset.to_parquet, the hub's refs/convert/parquet and data/*.parquet):
// an image column of struct<bytes: binary, path: string> (the Image
// feature) or plain binary, an integer label column whose ClassLabel names
// are in the schema's "huggingface" metadata
// ({"info": {"features": {"label": {"_type": "ClassLabel", "names": […]}}}}),
// and any other columns. Items are the rows in file order, files in name
// order (or pattern order).
//
// Opening reads only the label and id columns; Stream reads the image
// column one row group at a time (in batches of hfBatchRows rows), so a
// file is never held whole in memory.

// hfBatchRows is the number of rows of image data read at once.
const hfBatchRows = 8

type hfFile struct {
	path      string
	first     int     // index of the file's first row
	rows      int     // rows in the file
	groups    []int64 // rows per row group
	imageLeaf int
}

type hfSource struct {
	name      string
	opt       SourceOptions
	files     []hfFile
	ids       []string // nil: FILE:ROW
	labels    []int64
	hasLabel  []bool // nil: no labels
	classes   []string
	idNote    string
	labelNote string
	digest    []byte
}

func (s *hfSource) Len() int {
	f := s.files[len(s.files)-1]
	return f.first + f.rows
}
func (s *hfSource) Classes() []string { return slices.Clone(s.classes) }
func (s *hfSource) Name() string {
	return fmt.Sprintf("hf-parquet %s (%d files)", s.name, len(s.files))
}
func (s *hfSource) containerDigest() []byte { return s.digest }
func (s *hfSource) labelScheme() string     { return s.labelNote + "; ids: " + s.idNote }
func (s *hfSource) fileOf(i int) (int, int) { // file, row in file
	k, _ := slices.BinarySearchFunc(s.files, i, func(f hfFile, i int) int {
		switch {
		case i < f.first:
			return 1
		case i >= f.first+f.rows:
			return -1
		}
		return 0
	})
	return k, i - s.files[k].first
}

func (s *hfSource) Item(i int) Item {
	checkItem(i, s.Len())
	it := Item{Index: i}
	if s.ids != nil {
		it.ID = s.ids[i]
	} else {
		k, r := s.fileOf(i)
		it.ID = filepath.Base(s.files[k].path) + ":" + strconv.Itoa(r)
	}
	if s.hasLabel != nil && s.hasLabel[i] {
		it.Label, it.HasLabel = s.labels[i], true
		if s.classes != nil && it.Label >= 0 && it.Label < int64(len(s.classes)) {
			it.LabelName = s.classes[it.Label]
		}
	}
	return it
}

// openParquet opens a Parquet file for reading a page at a time, batch rows per record.
func openParquet(p string, batch int64) (*os.File, *file.Reader, *pqarrow.FileReader, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("data source: %w", err)
	}
	rp := parquet.NewReaderProperties(memory.DefaultAllocator)
	rp.BufferedStreamEnabled = true
	rp.BufferSize = 64 << 10
	pr, err := file.NewParquetReader(f, file.WithReadProps(rp))
	if err != nil {
		f.Close()
		return nil, nil, nil, fmt.Errorf("%s: not a readable Parquet file: %w", p, err)
	}
	fr, err := pqarrow.NewFileReader(pr, pqarrow.ArrowReadProperties{BatchSize: batch}, memory.DefaultAllocator)
	if err != nil {
		pr.Close()
		return nil, nil, nil, fmt.Errorf("%s: %w", p, err)
	}
	return f, pr, fr, nil
}

// hfFeatures reads the ClassLabel names of column col from the
// "huggingface" metadata; nil when there are none.
func hfFeatures(p string, pr *file.Reader, col string) ([]string, error) {
	js := pr.MetaData().KeyValueMetadata().FindValue("huggingface")
	if js == nil {
		return nil, nil
	}
	var meta struct {
		Info struct {
			Features map[string]struct {
				Type  string   `json:"_type"`
				Names []string `json:"names"`
			} `json:"features"`
		} `json:"info"`
	}
	if err := json.Unmarshal([]byte(*js), &meta); err != nil {
		return nil, fmt.Errorf("%s: \"huggingface\" metadata: %v", p, err)
	}
	if f, ok := meta.Info.Features[col]; ok && f.Type == "ClassLabel" {
		return f.Names, nil
	}
	return nil, nil
}

func columnNames(fields []arrow.Field) string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.Name
	}
	return strings.Join(names, ", ")
}

func isBinary(t arrow.DataType) bool {
	return t.ID() == arrow.BINARY || t.ID() == arrow.LARGE_BINARY
}

func isString(t arrow.DataType) bool {
	return t.ID() == arrow.STRING || t.ID() == arrow.LARGE_STRING
}

func isInteger(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64:
		return true
	}
	return false
}

// hfColumns are the leaves a file's listing reads.
type hfColumns struct {
	imageLeaf, pathLeaf, labelLeaf, idLeaf int // -1 when absent
	classes                                []string
}

func hfResolve(p string, pr *file.Reader, fr *pqarrow.FileReader, opt SourceOptions) (hfColumns, error) {
	c := hfColumns{imageLeaf: -1, pathLeaf: -1, labelLeaf: -1, idLeaf: -1}
	schema, err := fr.Schema()
	if err != nil {
		return c, fmt.Errorf("%s: %w", p, err)
	}
	fields := schema.Fields()
	find := func(name string) int {
		return slices.IndexFunc(fields, func(f arrow.Field) bool { return f.Name == name })
	}
	i := find(opt.ImageColumn)
	if i < 0 {
		return c, fmt.Errorf("%s: no image column %q (columns: %s); name it with --image-column", p, opt.ImageColumn, columnNames(fields))
	}
	mf := &fr.Manifest.Fields[i]
	switch t := fields[i].Type.(type) {
	case *arrow.StructType:
		for k, ch := range t.Fields() {
			switch {
			case ch.Name == "bytes" && isBinary(ch.Type):
				c.imageLeaf = leafOf(&mf.Children[k])
			case ch.Name == "path" && isString(ch.Type):
				c.pathLeaf = leafOf(&mf.Children[k])
			}
		}
		if c.imageLeaf < 0 {
			return c, fmt.Errorf("%s: image column %q is %s, want struct<bytes: binary, path: string> or binary", p, opt.ImageColumn, t)
		}
	default:
		if !isBinary(t) {
			return c, fmt.Errorf("%s: image column %q is %s, want struct<bytes: binary, path: string> or binary", p, opt.ImageColumn, t)
		}
		c.imageLeaf = leafOf(mf)
	}
	label := opt.LabelColumn
	if label == "" {
		label = "label"
	}
	if j := find(label); j >= 0 {
		if !isInteger(fields[j].Type) {
			return c, fmt.Errorf("%s: label column %q is %s, want integers (a ClassLabel)", p, label, fields[j].Type)
		}
		c.labelLeaf = leafOf(&fr.Manifest.Fields[j])
		if c.classes, err = hfFeatures(p, pr, label); err != nil {
			return c, err
		}
	} else if opt.LabelColumn != "" {
		return c, fmt.Errorf("%s: no label column %q (columns: %s)", p, label, columnNames(fields))
	}
	if opt.IDColumn != "" {
		j := find(opt.IDColumn)
		if j < 0 {
			return c, fmt.Errorf("%s: no id column %q (columns: %s)", p, opt.IDColumn, columnNames(fields))
		}
		if !isString(fields[j].Type) && !isInteger(fields[j].Type) {
			return c, fmt.Errorf("%s: id column %q is %s, want strings or integers", p, opt.IDColumn, fields[j].Type)
		}
		c.idLeaf = leafOf(&fr.Manifest.Fields[j])
	}
	return c, nil
}

// hfValue reads row r of a label or id column as an integer or a string.
func hfValue(a arrow.Array, r int) (n int64, s string, ok bool) {
	if a.IsNull(r) {
		return 0, "", false
	}
	switch x := a.(type) {
	case *array.Struct: // image: its path child
		if x.NumField() == 0 {
			return 0, "", false
		}
		return hfValue(x.Field(0), r)
	case *array.String:
		return 0, x.Value(r), true
	case *array.LargeString:
		return 0, x.Value(r), true
	case *array.Int8:
		return int64(x.Value(r)), "", true
	case *array.Int16:
		return int64(x.Value(r)), "", true
	case *array.Int32:
		return int64(x.Value(r)), "", true
	case *array.Int64:
		return x.Value(r), "", true
	case *array.Uint8:
		return int64(x.Value(r)), "", true
	case *array.Uint16:
		return int64(x.Value(r)), "", true
	case *array.Uint32:
		return int64(x.Value(r)), "", true
	case *array.Uint64:
		return int64(x.Value(r)), "", true
	}
	return 0, "", false
}

func openHFParquet(name string, paths []string, opt SourceOptions) (src Source, err error) {
	s := &hfSource{name: name, opt: opt}
	h := sha256.New()
	var b []byte
	var paths0 []string // image.path per row
	var ids []string    // --id-column per row
	var classes []string
	anyLabel := false
	for fi, p := range paths {
		if err := s.listFile(fi, p, h, &b, &paths0, &ids, &classes, &anyLabel); err != nil {
			return nil, err
		}
	}
	if s.Len() == 0 {
		return nil, fmt.Errorf("%s: no rows", name)
	}
	s.classes = classes
	if !anyLabel {
		s.hasLabel, s.labels = nil, nil
	}
	switch {
	case !anyLabel:
		s.labelNote = "no labels"
	case classes != nil:
		s.labelNote = fmt.Sprintf("integer labels (ClassLabel, %d names from the huggingface metadata), kept as given", len(classes))
	default:
		s.labelNote = "integer labels, kept as given"
	}
	switch {
	case opt.IDColumn != "":
		seen := make(map[string]int, len(ids))
		for i, id := range ids {
			if prev, dup := seen[id]; dup {
				return nil, fmt.Errorf("%s: id column %q repeats %q (rows %d and %d): ids must be unique", name, opt.IDColumn, id, prev, i)
			}
			seen[id] = i
		}
		s.ids, s.idNote = ids, "column "+strconv.Quote(opt.IDColumn)
	default:
		s.idNote = "FILE:ROW (no image.path)"
		seen := make(map[string]int, len(paths0))
		for i, p := range paths0 {
			if p == "" {
				s.idNote = fmt.Sprintf("FILE:ROW (row %d has no image.path)", i)
				break
			}
			if prev, dup := seen[p]; dup {
				s.idNote = fmt.Sprintf("FILE:ROW (image.path %q repeats, rows %d and %d)", p, prev, i)
				break
			}
			seen[p] = i
			if i == len(paths0)-1 {
				s.ids, s.idNote = paths0, "image.path"
			}
		}
	}
	s.digest = h.Sum(nil)
	return s, nil
}

// listFile reads one file's label and id columns into s.
func (s *hfSource) listFile(fi int, p string, h io.Writer, b *[]byte, paths0, ids *[]string, classes *[]string, anyLabel *bool) (err error) {
	// arrow/go can panic on malformed input; report it as a bad file.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: corrupt Parquet data: %v", p, r)
		}
	}()
	f, pr, fr, err := openParquet(p, 1<<16) // labels and ids: small values
	if err != nil {
		return err
	}
	defer pr.Close() // closes f
	cols, err := hfResolve(p, pr, fr, s.opt)
	if err != nil {
		return err
	}
	if fi > 0 && !slices.Equal(cols.classes, *classes) {
		return fmt.Errorf("%s: ClassLabel names differ from %s's", p, s.files[0].path)
	}
	*classes = cols.classes
	hf := hfFile{path: p, first: s.Len0(), rows: int(pr.NumRows()), imageLeaf: cols.imageLeaf}
	for g := 0; g < pr.NumRowGroups(); g++ {
		hf.groups = append(hf.groups, pr.MetaData().RowGroup(g).NumRows())
	}
	st, _ := f.Stat()
	*b = binary.LittleEndian.AppendUint64((*b)[:0], uint64(len(filepath.Base(p))))
	*b = append(*b, filepath.Base(p)...)
	*b = binary.LittleEndian.AppendUint64(*b, uint64(st.Size()))
	*b = binary.LittleEndian.AppendUint64(*b, uint64(hf.rows))
	for _, n := range hf.groups {
		*b = binary.LittleEndian.AppendUint64(*b, uint64(n))
	}
	h.Write(*b)

	var leaves []int
	for _, l := range []int{cols.pathLeaf, cols.labelLeaf, cols.idLeaf} {
		if l >= 0 && !slices.Contains(leaves, l) {
			leaves = append(leaves, l)
		}
	}
	slices.Sort(leaves) // records come back in leaf order
	pos := func(l int) int { return slices.Index(leaves, l) }
	read := 0
	if len(leaves) > 0 {
		rr, err := fr.GetRecordReader(context.Background(), leaves, nil)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		defer rr.Release()
		for rr.Next() {
			rec := rr.Record()
			for r := 0; r < int(rec.NumRows()); r++ {
				if cols.pathLeaf >= 0 {
					_, v, _ := hfValue(rec.Column(pos(cols.pathLeaf)), r)
					*paths0 = append(*paths0, v)
				}
				if cols.idLeaf >= 0 {
					n, v, ok := hfValue(rec.Column(pos(cols.idLeaf)), r)
					if !ok {
						return fmt.Errorf("%s: row %d: id column %q is null", p, read+r, s.opt.IDColumn)
					}
					if v == "" {
						v = strconv.FormatInt(n, 10)
					}
					*ids = append(*ids, v)
				}
				has := false
				var lab int64
				if cols.labelLeaf >= 0 {
					lab, _, has = hfValue(rec.Column(pos(cols.labelLeaf)), r)
					if has && cols.classes != nil && lab == -1 {
						has = false // datasets marks a missing ClassLabel as -1
					}
					if has && cols.classes != nil && lab >= int64(len(cols.classes)) {
						return fmt.Errorf("%s: row %d: label %d is not one of the %d ClassLabel names", p, read+r, lab, len(cols.classes))
					}
				}
				*anyLabel = *anyLabel || has
				s.labels = append(s.labels, lab)
				s.hasLabel = append(s.hasLabel, has)
			}
			read += int(rec.NumRows())
		}
		if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: %w", p, err)
		}
	} else {
		read = hf.rows
		for range hf.rows {
			s.labels = append(s.labels, 0)
			s.hasLabel = append(s.hasLabel, false)
			*paths0 = append(*paths0, "")
		}
	}
	if cols.pathLeaf < 0 && len(leaves) > 0 {
		for range read {
			*paths0 = append(*paths0, "")
		}
	}
	if read != hf.rows {
		return fmt.Errorf("%s: read %d rows, the footer says %d: damaged file", p, read, hf.rows)
	}
	s.files = append(s.files, hf)
	return nil
}

// Len0 is the number of rows listed so far.
func (s *hfSource) Len0() int {
	if len(s.files) == 0 {
		return 0
	}
	return s.Len()
}

// Stream reads the image column of the row groups holding wanted rows.
func (s *hfSource) Stream(indices []int) iter.Seq2[Item, error] {
	return func(yield func(Item, error) bool) {
		n := s.Len()
		for k := 0; k < len(indices); {
			if indices[k] < 0 || indices[k] >= n || (k > 0 && indices[k] <= indices[k-1]) {
				panic(itemPanic{indices[k], n})
			}
			fi, _ := s.fileOf(indices[k])
			f := s.files[fi]
			end := k
			for end < len(indices) && indices[end] < f.first+f.rows {
				end++
			}
			if !s.streamFile(f, indices[k:end], yield) {
				return
			}
			k = end
		}
	}
}

func (s *hfSource) streamFile(hf hfFile, wanted []int, yield func(Item, error) bool) (more bool) {
	inYield := false // a panic in the caller's loop body is its own: not recovered here
	defer func() {
		if inYield {
			return
		}
		if r := recover(); r != nil {
			yield(Item{}, fmt.Errorf("%s: corrupt Parquet data: %v", hf.path, r))
			more = false
		}
	}()
	_, pr, fr, err := openParquet(hf.path, hfBatchRows)
	if err != nil {
		yield(Item{}, err)
		return false
	}
	defer pr.Close()
	w := 0
	start := hf.first
	for g, rows := range hf.groups {
		gEnd := start + int(rows)
		if w >= len(wanted) {
			break
		}
		if wanted[w] >= gEnd {
			start = gEnd
			continue
		}
		rr, err := fr.GetRecordReader(context.Background(), []int{hf.imageLeaf}, []int{g})
		if err != nil {
			yield(Item{}, fmt.Errorf("%s: row group %d: %w", hf.path, g, err))
			return false
		}
		row := start
		for rr.Next() && w < len(wanted) {
			rec := rr.Record()
			col := rec.Column(0)
			if st, ok := col.(*array.Struct); ok {
				col = st.Field(0)
			}
			for r := 0; r < int(rec.NumRows()) && w < len(wanted); r++ {
				if row+r != wanted[w] {
					continue
				}
				w++
				it := s.Item(row + r)
				data, err := hfBytes(col, r)
				switch {
				case err != nil:
					it.Err = fmt.Errorf("%s: row %d: %w", hf.path, row+r-hf.first, err)
				case int64(len(data)) > s.opt.MaxImageBytes:
					it.Err = fmt.Errorf("%s: row %d: image is %d bytes, over the image limit of %d bytes: skipped", hf.path, row+r-hf.first, len(data), s.opt.MaxImageBytes)
				default:
					it.Data = slices.Clone(data) // the record's buffers are reused
				}
				inYield = true
				more := yield(it, nil)
				inYield = false
				if !more {
					rr.Release()
					return false
				}
			}
			row += int(rec.NumRows())
		}
		if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
			rr.Release()
			yield(Item{}, fmt.Errorf("%s: row group %d: %w", hf.path, g, err))
			return false
		}
		rr.Release()
		start = gEnd
	}
	if w < len(wanted) {
		yield(Item{}, fmt.Errorf("%s: ends before row %d: changed since it was listed", hf.path, wanted[w]-hf.first))
		return false
	}
	return true
}

func hfBytes(a arrow.Array, r int) ([]byte, error) {
	if a.IsNull(r) {
		return nil, errors.New("image bytes are null")
	}
	switch x := a.(type) {
	case *array.Binary:
		return x.Value(r), nil
	case *array.LargeBinary:
		return x.Value(r), nil
	}
	return nil, fmt.Errorf("image column holds %s, not bytes", a.DataType())
}

package probe

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/apache/arrow/go/v15/parquet"
	"github.com/apache/arrow/go/v15/parquet/compress"
	"github.com/apache/arrow/go/v15/parquet/pqarrow"
	"github.com/perceiverkit/perceiver/internal/outfile"
)

// Column describes one representation stored per row: a float32 vector of
// Dim values (a FixedSizeList<float32> column in the Parquet file).
type Column struct {
	Name        string `json:"name"`
	Dim         int    `json:"dim"`
	Description string `json:"description,omitempty"`
}

// Row is one embedded item. Index is the item's position in the (unsharded,
// sorted) source and orders the rows of a file. Empty LabelName and Split are
// stored as null. Vectors holds one vector per Column, in the writer's order.
type Row struct {
	Index     int
	ID        string
	Label     int64
	HasLabel  bool
	LabelName string
	Split     string
	Vectors   [][]float32
}

// Names of the fixed columns, ahead of the vector columns in every file.
const (
	ColID        = "id"
	ColIndex     = "index"
	ColLabel     = "label"
	ColLabelName = "label_name"
	ColSplit     = "split"
)

const numFixed = 5

// Metadata keys the store reserves for itself.
const (
	MetaColumns = "probe.columns" // JSON array of Column
	MetaFormat  = "probe.format"  // store layout version
	formatValue = "2"             // 2: with MetaChecksums; 1: without
)

func isFixedName(s string) bool {
	switch s {
	case ColID, ColIndex, ColLabel, ColLabelName, ColSplit:
		return true
	}
	return false
}

func validateColumns(cols []Column) error {
	if len(cols) == 0 {
		return errors.New("no vector columns")
	}
	seen := map[string]bool{}
	for _, c := range cols {
		switch {
		case c.Name == "" || strings.ContainsAny(c.Name, ". \t\n"):
			return fmt.Errorf("column %q: name must be non-empty without dots or spaces", c.Name)
		case isFixedName(c.Name):
			return fmt.Errorf("column %q: name is reserved", c.Name)
		case seen[c.Name]:
			return fmt.Errorf("column %q: duplicate name", c.Name)
		case c.Dim <= 0:
			return fmt.Errorf("column %q: dimension %d must be positive", c.Name, c.Dim)
		}
		seen[c.Name] = true
	}
	return nil
}

// arrowSchema lays out the fixed columns then one FixedSizeList<float32> per
// Column. The lists are declared nullable: arrow/go v15 writes a non-nullable
// FixedSizeList without its values (see DESIGN.md).
func arrowSchema(cols []Column) *arrow.Schema {
	fields := []arrow.Field{
		{Name: ColID, Type: arrow.BinaryTypes.String},
		{Name: ColIndex, Type: arrow.PrimitiveTypes.Int64},
		{Name: ColLabel, Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: ColLabelName, Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: ColSplit, Type: arrow.BinaryTypes.String, Nullable: true},
	}
	for _, c := range cols {
		fields = append(fields, arrow.Field{
			Name:     c.Name,
			Type:     arrow.FixedSizeListOfNonNullable(int32(c.Dim), arrow.PrimitiveTypes.Float32),
			Nullable: true,
		})
	}
	return arrow.NewSchema(fields, nil)
}

// pageSize is the target data page size.
const pageSize = 1 << 20

func writerProps() (*parquet.WriterProperties, pqarrow.ArrowWriterProperties) {
	props := parquet.NewWriterProperties(
		parquet.WithDictionaryDefault(false),
		parquet.WithDictionaryFor(ColLabelName, true),
		parquet.WithDictionaryFor(ColSplit, true),
		parquet.WithCompression(compress.Codecs.Snappy),
		parquet.WithStats(false),
		parquet.WithMaxRowGroupLength(1<<40),
		parquet.WithDataPageSize(pageSize),
		parquet.WithDataPageVersion(parquet.DataPageV2),
	)
	return props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema())
}

// rowBytes estimates the in-memory size of a row, used to cut row groups.
func rowBytes(r *Row) int64 {
	n := int64(32 + len(r.ID) + len(r.LabelName) + len(r.Split))
	for _, v := range r.Vectors {
		n += 4 * int64(len(v))
	}
	return n
}

// recordBuilder accumulates rows into arrow arrays of the store's schema.
// Vector values go straight into one []float32 per column, which becomes
// the list's child buffer without another copy.
type recordBuilder struct {
	schema *arrow.Schema
	b      *array.RecordBuilder // the fixed columns only
	id     *array.StringBuilder
	index  *array.Int64Builder
	label  *array.Int64Builder
	lname  *array.StringBuilder
	split  *array.StringBuilder
	dims   []int
	vals   [][]float32
	rows   int
	bytes  int64
}

func newRecordBuilder(schema *arrow.Schema) *recordBuilder {
	fixed := arrow.NewSchema(schema.Fields()[:numFixed], nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, fixed)
	rb := &recordBuilder{
		schema: schema,
		b:      b,
		id:     b.Field(0).(*array.StringBuilder),
		index:  b.Field(1).(*array.Int64Builder),
		label:  b.Field(2).(*array.Int64Builder),
		lname:  b.Field(3).(*array.StringBuilder),
		split:  b.Field(4).(*array.StringBuilder),
	}
	for _, f := range schema.Fields()[numFixed:] {
		rb.dims = append(rb.dims, int(f.Type.(*arrow.FixedSizeListType).Len()))
	}
	rb.vals = make([][]float32, len(rb.dims))
	return rb
}

func appendNullable(b *array.StringBuilder, s string) {
	if s == "" {
		b.AppendNull()
	} else {
		b.Append(s)
	}
}

// reserve makes room for n more rows so appends do not regrow the buffers.
func (rb *recordBuilder) reserve(n int) {
	rb.b.Reserve(n)
	for j, d := range rb.dims {
		rb.vals[j] = slices.Grow(rb.vals[j], n*d)
	}
}

func (rb *recordBuilder) appendRow(r *Row) {
	rb.id.Append(r.ID)
	rb.index.Append(int64(r.Index))
	if r.HasLabel {
		rb.label.Append(r.Label)
	} else {
		rb.label.AppendNull()
	}
	appendNullable(rb.lname, r.LabelName)
	appendNullable(rb.split, r.Split)
	for j, v := range r.Vectors {
		rb.vals[j] = append(rb.vals[j], v...)
	}
	rb.rows++
	rb.bytes += rowBytes(r)
}

// newRecord returns the accumulated rows and resets the builder.
func (rb *recordBuilder) newRecord() arrow.Record {
	fixed := rb.b.NewRecord()
	defer fixed.Release()
	cols := make([]arrow.Array, 0, len(rb.schema.Fields()))
	cols = append(cols, fixed.Columns()...)
	for j, f := range rb.schema.Fields()[numFixed:] {
		child := array.NewData(arrow.PrimitiveTypes.Float32, len(rb.vals[j]),
			[]*memory.Buffer{nil, memory.NewBufferBytes(arrow.Float32Traits.CastToBytes(rb.vals[j]))}, nil, 0, 0)
		list := array.NewData(f.Type, rb.rows, []*memory.Buffer{nil}, []arrow.ArrayData{child}, 0, 0)
		cols = append(cols, array.MakeFromData(list))
		child.Release()
		list.Release()
		rb.vals[j] = nil // the record owns the values now
	}
	rec := array.NewRecord(rb.schema, cols, int64(rb.rows))
	for _, c := range cols[numFixed:] {
		c.Release()
	}
	rb.rows, rb.bytes = 0, 0
	return rec
}

func (rb *recordBuilder) release() { rb.b.Release() }

// parquetSink writes records as row groups to a file under a temporary name
// and renames it into place only when the footer is written and synced.
type parquetSink struct {
	final, tmp string
	f          *os.File
	fw         *pqarrow.FileWriter
	meta       map[string]string
	sums       *checksums
}

func newParquetSink(final, tmp string, schema *arrow.Schema, meta map[string]string) (*parquetSink, error) {
	// The sink renames over final: a link, FIFO or device there must stay (the one safe writer's rule).
	if err := outfile.CheckTarget(final); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	props, aprops := writerProps()
	fw, err := pqarrow.NewFileWriter(schema, f, props, aprops)
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("%s: %w", tmp, err)
	}
	for _, k := range sortedKeys(meta) {
		if err := fw.AppendKeyValueMetadata(k, meta[k]); err != nil {
			fw.Close()
			os.Remove(tmp)
			return nil, fmt.Errorf("%s: metadata %q: %w", tmp, k, err)
		}
	}
	// The checksum of the metadata covers the schema pqarrow stores beside it.
	summed := make(map[string]string, len(meta)+1)
	for k, v := range meta {
		summed[k] = v
	}
	summed[metaArrowSchema] = storedSchema(schema)
	return &parquetSink{final: final, tmp: tmp, f: f, fw: fw, meta: summed, sums: newChecksums(fieldNames(schema))}, nil
}

func (s *parquetSink) write(rec arrow.Record) error {
	for j, col := range rec.Columns() {
		s.sums.add(j, col)
	}
	if err := s.fw.Write(rec); err != nil {
		return fmt.Errorf("%s: %w", s.tmp, err)
	}
	return nil
}

// commit writes the footer, syncs, and renames the file into place.
func (s *parquetSink) commit() error {
	if err := s.fw.AppendKeyValueMetadata(MetaChecksums, s.sums.encode(s.meta)); err != nil {
		s.abort()
		return fmt.Errorf("%s: %w", s.tmp, err)
	}
	// FileWriter.Close closes the file too, so sync through a second handle.
	if err := s.fw.Close(); err != nil {
		os.Remove(s.tmp)
		return fmt.Errorf("%s: %w", s.tmp, err)
	}
	if err := syncPath(s.tmp); err != nil {
		os.Remove(s.tmp)
		return err
	}
	if err := outfile.CheckTarget(s.final); err != nil { // it may have appeared meanwhile
		os.Remove(s.tmp)
		return err
	}
	if err := os.Rename(s.tmp, s.final); err != nil {
		os.Remove(s.tmp)
		return err
	}
	return syncPath(filepath.Dir(s.final))
}

func (s *parquetSink) abort() {
	s.fw.Close()
	os.Remove(s.tmp)
}

func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

func storeMetadata(cols []Column, user map[string]string) (map[string]string, error) {
	meta := make(map[string]string, len(user)+2)
	for k, v := range user {
		if strings.HasPrefix(k, "probe.") || strings.HasPrefix(k, "ARROW:") || k == "" {
			return nil, fmt.Errorf("metadata key %q is reserved", k)
		}
		meta[k] = v
	}
	js, err := json.Marshal(cols)
	if err != nil {
		return nil, err
	}
	meta[MetaColumns] = string(js)
	meta[MetaFormat] = formatValue
	return meta, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

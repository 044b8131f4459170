package sae

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/apache/arrow/go/v15/parquet"
	"github.com/apache/arrow/go/v15/parquet/compress"
	"github.com/apache/arrow/go/v15/parquet/file"
	"github.com/apache/arrow/go/v15/parquet/pqarrow"
)

// CodeRow is one row of a codes file: a sample's sparse code and its share of the error.
type CodeRow struct {
	ID      string
	Latent  int32 // the latent number, for token data; -1 otherwise
	Indices []int32
	Values  []float32
	FVURow  float64
}

// codesSchema: id, latent (token data only), indices list<int32>, values list<float32>, fvu_row.
func codesSchema(tokens bool) *arrow.Schema {
	f := []arrow.Field{{Name: "id", Type: arrow.BinaryTypes.String}}
	if tokens {
		f = append(f, arrow.Field{Name: "latent", Type: arrow.PrimitiveTypes.Int32})
	}
	f = append(f,
		arrow.Field{Name: "indices", Type: arrow.ListOf(arrow.PrimitiveTypes.Int32), Nullable: true},
		arrow.Field{Name: "values", Type: arrow.ListOf(arrow.PrimitiveTypes.Float32), Nullable: true},
		arrow.Field{Name: "fvu_row", Type: arrow.PrimitiveTypes.Float64})
	return arrow.NewSchema(f, nil)
}

// WriteCodes encodes every sample of data with s and writes the codes as Parquet to w, rows in
// sample order (unit-major). fvu_row = ‖x − x̂‖² / ((1/n)Σ‖x − μ‖²) over all n samples, so
// the mean of fvu_row is the data's FVU. latents names each sample's latent (nil: no latent
// column). It returns the FVU.
func WriteCodes(w io.Writer, s *SAE, data Data, latents []int, meta map[string]string) (float64, error) {
	n := data.Units() * data.PerUnit()
	d, k := s.D, s.K
	// First pass: the mean and Σ‖x − μ‖², in float64.
	mean := make([]float64, d)
	buf := make([]float32, d)
	for i := 0; i < n; i++ {
		data.Read(buf, i)
		for c, v := range buf {
			mean[c] += float64(v)
		}
	}
	for c := range mean {
		mean[c] /= float64(n)
	}
	var sst float64
	for i := 0; i < n; i++ {
		data.Read(buf, i)
		for c, v := range buf {
			dv := float64(v) - mean[c]
			sst += dv * dv
		}
	}
	if !(sst > 0) {
		return 0, fmt.Errorf("all %d rows are equal: fvu_row is undefined", n)
	}
	scale := float64(n) / sst
	tokens := latents != nil
	schema := codesSchema(tokens)
	md := arrow.NewMetadata(keys(meta), values(meta))
	schema = arrow.NewSchema(schema.Fields(), &md)
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy), parquet.WithDataPageVersion(parquet.DataPageV2),
		parquet.WithDictionaryDefault(false), parquet.WithStats(false))
	fw, err := pqarrow.NewFileWriter(schema, nopCloser{w}, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		return 0, err
	}
	const chunk = 8192
	x := make([]float32, chunk*d)
	xh := make([]float32, chunk*d)
	idx := make([]int32, chunk*k)
	val := make([]float32, chunk*k)
	mem := memory.NewGoAllocator()
	var sse float64
	for lo := 0; lo < n; lo += chunk {
		c := min(n, lo+chunk) - lo
		for r := 0; r < c; r++ {
			data.Read(x[r*d:(r+1)*d], lo+r)
		}
		s.Encode(idx, val, x[:c*d], c)
		s.Decode(xh, idx, val, c)
		b := array.NewRecordBuilder(mem, schema)
		col := 0
		ids := b.Field(col).(*array.StringBuilder)
		col++
		var lat *array.Int32Builder
		if tokens {
			lat = b.Field(col).(*array.Int32Builder)
			col++
		}
		il := b.Field(col).(*array.ListBuilder)
		iv := il.ValueBuilder().(*array.Int32Builder)
		vl := b.Field(col + 1).(*array.ListBuilder)
		vv := vl.ValueBuilder().(*array.Float32Builder)
		fv := b.Field(col + 2).(*array.Float64Builder)
		for r := 0; r < c; r++ {
			smp := lo + r
			ids.Append(data.UnitID(smp / data.PerUnit()))
			if tokens {
				lat.Append(int32(latents[smp%data.PerUnit()]))
			}
			il.Append(true)
			iv.AppendValues(idx[r*k:(r+1)*k], nil)
			vl.Append(true)
			vv.AppendValues(val[r*k:(r+1)*k], nil)
			var e float64
			for i := 0; i < d; i++ {
				dv := float64(x[r*d+i]) - float64(xh[r*d+i])
				e += dv * dv
			}
			sse += e
			fv.Append(e * scale)
		}
		rec := b.NewRecord()
		b.Release()
		err := fw.Write(rec)
		rec.Release()
		if err != nil {
			fw.Close()
			return 0, err
		}
	}
	if err := fw.Close(); err != nil {
		return 0, err
	}
	return sse / sst, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func values(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, m[k])
	}
	return out
}

// ReadCodes reads a codes file written by WriteCodes.
func ReadCodes(path string) ([]CodeRow, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pr, err := file.NewParquetReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer pr.Close()
	ar, err := pqarrow.NewFileReader(pr, pqarrow.ArrowReadProperties{BatchSize: 8192}, memory.NewGoAllocator())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	rr, err := ar.GetRecordReader(context.Background(), nil, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer rr.Release()
	var out []CodeRow
	for rr.Next() {
		rec := rr.Record()
		sc := rec.Schema()
		col := func(name string) arrow.Array {
			is := sc.FieldIndices(name)
			if len(is) == 0 {
				return nil
			}
			return rec.Column(is[0])
		}
		ids, _ := col("id").(*array.String)
		il, _ := col("indices").(*array.List)
		vl, _ := col("values").(*array.List)
		fv, _ := col("fvu_row").(*array.Float64)
		if ids == nil || il == nil || vl == nil || fv == nil {
			return nil, fmt.Errorf("%s: not a codes file (want id, indices, values, fvu_row)", path)
		}
		lat, _ := col("latent").(*array.Int32)
		iv := il.ListValues().(*array.Int32)
		vv := vl.ListValues().(*array.Float32)
		for r := 0; r < int(rec.NumRows()); r++ {
			a, b := il.ValueOffsets(r)
			c, e := vl.ValueOffsets(r)
			row := CodeRow{ID: ids.Value(r), Latent: -1, FVURow: fv.Value(r),
				Indices: append([]int32(nil), iv.Int32Values()[a:b]...), Values: append([]float32(nil), vv.Float32Values()[c:e]...)}
			if lat != nil {
				row.Latent = lat.Value(r)
			}
			out = append(out, row)
		}
	}
	if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

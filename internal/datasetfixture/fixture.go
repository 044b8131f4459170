// Package datasetfixture writes small data sets in the layouts other tools ship, for tests and
// benchmarks: WebDataset tar shards as webdataset's TarWriter writes them (members KEY.EXT, in
// sample order, mode 0444) and Parquet files as Hugging Face datasets writes an Image/ClassLabel
// dataset (image struct<bytes: binary, path: string>, label int64, and the "huggingface" schema
// metadata holding the features).
package datasetfixture

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/apache/arrow/go/v15/parquet"
	"github.com/apache/arrow/go/v15/parquet/compress"
	"github.com/apache/arrow/go/v15/parquet/pqarrow"
)

// Member is one file of a sample: its extension (jpg, cls, json, …; "" for a member named by
// the key alone) and contents.
type Member struct {
	Ext  string
	Data []byte
}

// Sample is a WebDataset sample: the key and its members, written in this order.
type Sample struct {
	Key     string
	Members []Member
}

// WriteTar writes samples as one tar shard at path, gzipped when gz is set.
func WriteTar(path string, samples []Sample, gz bool) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	var w io.Writer = f
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(f)
		w = zw
	}
	tw := tar.NewWriter(w)
	for _, s := range samples {
		for _, m := range s.Members {
			name := s.Key + "." + m.Ext
			if m.Ext == "" {
				name = s.Key
			}
			hdr := &tar.Header{Name: name, Mode: 0o444, Size: int64(len(m.Data)), Typeflag: tar.TypeReg, Format: tar.FormatUSTAR}
			if err := tw.WriteHeader(hdr); err != nil {
				f.Close()
				return err
			}
			if _, err := tw.Write(m.Data); err != nil {
				f.Close()
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		f.Close()
		return err
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// Row is one row of a Hugging Face image dataset. Label < 0 writes a null label.
type Row struct {
	Bytes []byte
	Path  string
	Label int64
}

// HFMetadata is the "huggingface" schema metadata datasets writes for an Image column named image
// and a ClassLabel column named label (ArrowWriter._build_metadata: {"info": {"features":
// Features.to_dict()}}).
func HFMetadata(classes []string) string {
	feats := map[string]any{
		"image": map[string]any{"_type": "Image"},
		"label": map[string]any{"names": classes, "_type": "ClassLabel"},
	}
	b, _ := json.Marshal(map[string]any{"info": map[string]any{"features": feats}})
	return string(b)
}

// WriteHFParquet writes rows as a datasets Parquet file with row groups of rowGroup rows.
// binaryImage writes the image column as plain binary instead of the Image struct.
func WriteHFParquet(path string, rows []Row, classes []string, rowGroup int, binaryImage bool) error {
	imgType := arrow.DataType(arrow.StructOf(
		arrow.Field{Name: "bytes", Type: arrow.BinaryTypes.Binary, Nullable: true},
		arrow.Field{Name: "path", Type: arrow.BinaryTypes.String, Nullable: true},
	))
	if binaryImage {
		imgType = arrow.BinaryTypes.Binary
	}
	md := arrow.NewMetadata([]string{"huggingface"}, []string{HFMetadata(classes)})
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "image", Type: imgType, Nullable: true},
		{Name: "label", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	}, &md)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy))
	fw, err := pqarrow.NewFileWriter(schema, f, props, pqarrow.NewArrowWriterProperties())
	if err != nil {
		f.Close()
		return err
	}
	for start := 0; start < len(rows); start += rowGroup {
		b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		for _, r := range rows[start:min(start+rowGroup, len(rows))] {
			if binaryImage {
				b.Field(0).(*array.BinaryBuilder).Append(r.Bytes)
			} else {
				sb := b.Field(0).(*array.StructBuilder)
				sb.Append(true)
				sb.FieldBuilder(0).(*array.BinaryBuilder).Append(r.Bytes)
				if r.Path == "" {
					sb.FieldBuilder(1).(*array.StringBuilder).AppendNull()
				} else {
					sb.FieldBuilder(1).(*array.StringBuilder).Append(r.Path)
				}
			}
			if r.Label < 0 {
				b.Field(1).(*array.Int64Builder).AppendNull()
			} else {
				b.Field(1).(*array.Int64Builder).Append(r.Label)
			}
		}
		rec := b.NewRecord()
		b.Release()
		err := fw.Write(rec) // one record = one row group
		rec.Release()
		if err != nil {
			fw.Close()
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return fw.Close() // closes f
}

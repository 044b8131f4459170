//go:build ignore

// gen_clip_metadata writes clip/metadata/metadata_S.parquet from clip/ids_S.txt, as
// clip-retrieval's writer does with pandas: one row per embedding, the columns image_path and
// caption (dictionary-encoded UTF-8 strings, as pyarrow writes them). Run from the repository
// root after tools/similarity/reference.py:
//
//	go run testdata/similarity/gen_clip_metadata.go
package main

import (
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/apache/arrow/go/v15/parquet"
	"github.com/apache/arrow/go/v15/parquet/pqarrow"
)

func main() {
	dir := "testdata/similarity/clip"
	for _, s := range []string{"0", "1"} {
		b, err := os.ReadFile(filepath.Join(dir, "ids_"+s+".txt"))
		if err != nil {
			log.Fatal(err)
		}
		ids := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		schema := arrow.NewSchema([]arrow.Field{
			{Name: "image_path", Type: arrow.BinaryTypes.String, Nullable: true},
			{Name: "caption", Type: arrow.BinaryTypes.String, Nullable: true},
		}, nil)
		rb := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		for _, id := range ids {
			rb.Field(0).(*array.StringBuilder).Append(id)
			rb.Field(1).(*array.StringBuilder).Append("a photo of " + filepath.Base(id))
		}
		rec := rb.NewRecord()
		tbl := array.NewTableFromRecords(schema, []arrow.Record{rec})
		if err := os.MkdirAll(filepath.Join(dir, "metadata"), 0o755); err != nil {
			log.Fatal(err)
		}
		f, err := os.Create(filepath.Join(dir, "metadata", "metadata_"+s+".parquet"))
		if err != nil {
			log.Fatal(err)
		}
		props := parquet.NewWriterProperties(parquet.WithDictionaryDefault(true))
		if err := pqarrow.WriteTable(tbl, f, 1024, props, pqarrow.DefaultWriterProps()); err != nil {
			log.Fatal(err)
		}
	}
}

package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/apache/arrow/go/v15/parquet"
	"github.com/apache/arrow/go/v15/parquet/compress"
	"github.com/apache/arrow/go/v15/parquet/pqarrow"
	"github.com/x448/float16"

	"github.com/perceiverkit/perceiver/internal/outfile"
	"github.com/perceiverkit/perceiver/probe"
	"github.com/perceiverkit/perceiver/probe/linear"
)

// clip-retrieval's layout, as its inference step (clip_retrieval/clip_inference/writer.py) writes
// it and its index and back ends read it: OUT/img_emb/img_emb_{N}.npy, one [rows, dim] array per
// part, and OUT/metadata/metadata_{N}.parquet with the same rows in the same order (image_path
// first). N counts parts from 0, zero-padded to the digits of the part count
// (int(log10(count))+1), so that the sorted file names (autofaiss reads sorted *.npy, clip_back
// concatenates sorted metadata/*.parquet) keep the row order.

// clipMetadataSchema: image_path is the id; the other columns of a store row follow.
var clipMetadataSchema = arrow.NewSchema([]arrow.Field{
	{Name: "image_path", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "label", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "label_name", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "split", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "index", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
}, nil)

// clipPartNames are the files of part k of parts.
func clipPartNames(out string, k, parts int) (emb, meta string) {
	digits := int(math.Log10(float64(parts))) + 1
	n := fmt.Sprintf("%0*d", digits, k)
	return filepath.Join(out, "img_emb", "img_emb_"+n+".npy"), filepath.Join(out, "metadata", "metadata_"+n+".parquet")
}

var clipStale = regexp.MustCompile(`^(img_emb_\d+\.npy|metadata_\d+\.parquet)$`)

// exportClipRetrieval writes column of r in clip-retrieval's layout under out, perFile rows per
// part, as float32 or float16. Every target is checked before the first is written; with force,
// existing parts are replaced (never a folder, link or device), and a part of an earlier export
// that this one would not replace is an error either way, since clip-retrieval would read it too.
func exportClipRetrieval(r *probe.Reader, column, out, dtype string, perFile int, force bool, stdout io.Writer) error {
	if perFile < 1 {
		return fmt.Errorf("--rows-per-file must be positive")
	}
	descr, size := "<f4", 4
	switch dtype {
	case "float32":
	case "float16":
		descr, size = "<f2", 2
	default:
		return fmt.Errorf("--dtype %q: want float32 or float16", dtype)
	}
	var col probe.Column
	cols := r.Columns()
	switch {
	case column != "all" && column != "":
		found := false
		for _, c := range cols {
			if c.Name == column {
				col, found = c, true
			}
		}
		if !found || strings.Contains(column, ",") {
			return fmt.Errorf("--columns %q: clip-retrieval takes one embedding column, one of %s", column, columnNames(cols))
		}
	case len(cols) == 1:
		col = cols[0]
	default:
		return fmt.Errorf("clip-retrieval takes one embedding column: pass --columns NAME, one of %s", columnNames(cols))
	}
	rows := r.NumRows()
	if rows == 0 {
		return fmt.Errorf("%s: no rows to export", strings.Join(r.Files(), ", "))
	}
	parts := 0
	if rows > 0 {
		parts = (rows-1)/perFile + 1 // without rows+perFile, which overflows for a huge --rows-per-file
	}
	var targets []string
	mine := map[string]bool{}
	for k := range parts {
		e, m := clipPartNames(out, k, parts)
		targets = append(targets, e, m)
		mine[e], mine[m] = true, true
	}
	for _, sub := range []string{"img_emb", "metadata"} {
		ents, err := os.ReadDir(filepath.Join(out, sub))
		if err != nil && !os.IsNotExist(err) {
			return err
		}
		for _, e := range ents {
			p := filepath.Join(out, sub, e.Name())
			if clipStale.MatchString(e.Name()) && !mine[p] {
				return fmt.Errorf("%s is not a part of this export (%d parts) but clip-retrieval would read it too; remove it or choose another --out", p, parts)
			}
		}
	}
	for _, t := range targets {
		check := refuseExisting
		if force {
			check = outfile.CheckTarget // --force: replace regular files only
		}
		if err := check(t); err != nil {
			return err
		}
	}
	for _, sub := range []string{"img_emb", "metadata"} {
		if err := os.MkdirAll(filepath.Join(out, sub), 0o755); err != nil {
			return err
		}
	}

	// Stream the rows; each part's two files are open at once and put in place together.
	var emb, meta *pendingFile
	var mw *pqarrow.FileWriter
	var rb *array.RecordBuilder
	part, inPart := 0, 0
	partRows := func(k int) int { return min(perFile, rows-k*perFile) }
	buf := make([]byte, 0, col.Dim*size)
	abort := func() {
		if rb != nil {
			rb.Release()
		}
		if emb != nil {
			emb.abort()
		}
		if meta != nil {
			meta.abort()
		}
	}
	flushMeta := func() error {
		if rb == nil {
			return nil
		}
		rec := rb.NewRecord()
		defer rec.Release()
		if rec.NumRows() == 0 {
			return nil
		}
		return mw.Write(rec)
	}
	open := func() error {
		e, m := clipPartNames(out, part, parts)
		var err error
		if emb, err = createPending(e, force); err != nil {
			return err
		}
		if meta, err = createPending(m, force); err != nil {
			return err
		}
		if err := linear.WriteNPYHeader(emb, descr, partRows(part), col.Dim); err != nil {
			return err
		}
		props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy))
		if mw, err = pqarrow.NewFileWriter(clipMetadataSchema, meta, props, pqarrow.DefaultWriterProps()); err != nil {
			return fmt.Errorf("%s: %w", m, err)
		}
		rb = array.NewRecordBuilder(memory.DefaultAllocator, clipMetadataSchema)
		return nil
	}
	closePart := func() error {
		if err := flushMeta(); err != nil {
			return err
		}
		rb.Release()
		rb = nil
		if err := mw.Close(); err != nil {
			return fmt.Errorf("%s: %w", meta.path, err)
		}
		if err := emb.commit(); err != nil {
			return err
		}
		if err := meta.commit(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s (%d × %d %s) and %s\n", emb.path, partRows(part), col.Dim, dtype, meta.path)
		emb, meta = nil, nil
		part++
		inPart = 0
		return nil
	}
	err := r.Batches(4096, []string{col.Name}, func(t *probe.Table) error {
		vec := t.Vectors[0]
		for i := range t.Len() {
			if emb == nil {
				if err := open(); err != nil {
					return err
				}
			}
			buf = buf[:0]
			for _, v := range vec[i*col.Dim : (i+1)*col.Dim] {
				if size == 4 {
					buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
					continue
				}
				if math.Abs(float64(v)) > 65504 {
					return fmt.Errorf("--dtype float16: %s holds %g in row %s, beyond float16's range (±65504); export float32", col.Name, v, t.IDs[i])
				}
				buf = binary.LittleEndian.AppendUint16(buf, float16.Fromfloat32(v).Bits())
			}
			if _, err := emb.Write(buf); err != nil {
				return fmt.Errorf("%s: %w", emb.path, err)
			}
			rb.Field(0).(*array.StringBuilder).Append(t.IDs[i])
			if t.HasLabel[i] {
				rb.Field(1).(*array.Int64Builder).Append(t.Labels[i])
			} else {
				rb.Field(1).(*array.Int64Builder).AppendNull()
			}
			appendNullable(rb.Field(2).(*array.StringBuilder), t.LabelNames[i])
			appendNullable(rb.Field(3).(*array.StringBuilder), t.Splits[i])
			rb.Field(4).(*array.Int64Builder).Append(t.Index[i])
			inPart++
			if inPart%65536 == 0 {
				if err := flushMeta(); err != nil {
					return err
				}
			}
			if inPart == partRows(part) {
				if err := closePart(); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		abort()
		return err
	}
	if emb != nil || part != parts {
		abort()
		return fmt.Errorf("read %d parts' rows, expected %d: the features changed while reading", part, parts)
	}
	return nil
}

func columnNames(cols []probe.Column) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	return strings.Join(names, ", ")
}

// appendNullable appends s, or null for "" (the store's null label_name and split).
func appendNullable(b *array.StringBuilder, s string) {
	if s == "" {
		b.AppendNull()
	} else {
		b.Append(s)
	}
}

// Package probe holds the data side of representation probing: dataset
// sources, the Parquet embedding store, and sharding of extraction runs.
//
// Sources (OpenSource) list images in a fixed order: an ImageFolder tree
// (class indices from the sorted folder names, files in torchvision's
// order), a flat folder, a CSV/TSV manifest (file order), or MNIST-style
// IDX files. An item's Index is its position in that order; it keys
// sharding (Shard.Contains: index mod N == K-1) and the row order of every
// file, so shards, resumed runs and uninterrupted runs agree row for row.
//
// The store is one Parquet file per run (or per shard, see PartPath) with
// the columns
//
//	id string, index int64, label int64 (null when unknown),
//	label_name string (null), split string (null),
//	then one FixedSizeList<float32> per Column, in the writer's order.
//
// Vectors are row-major: a Table's Vectors[j] is [rows, Columns[j].Dim].
// Rows are sorted by index. Key-value metadata holds the caller's entries
// plus MetaColumns (the columns with their descriptions, as JSON) and
// MetaFormat.
//
// Writing is crash-safe: Writer buffers rows up to WriterOptions.RowGroupBytes,
// writes each buffer as a complete Parquet checkpoint in PartialDir(path),
// and on Close merges the checkpoints into path via a temporary file and a
// rename. A killed run loses at most its buffered rows; WriterOptions.Resume
// keeps the finished ones and Writer.Done lets the caller skip them.
//
// Files use Snappy compression and version-2 data pages: with version-1
// pages arrow/go v15 reallocates the repetition-level buffer of a list column
// once per row, which made 64 MiB row groups write at ~3 MB/s.
//
// Memory does not grow with the data. Measured live heap peaks (arrow/go v15
// allocates from the Go heap): about 3 x RowGroupBytes while writing and
// merging (~200 MiB for the default 64 MiB), ~30 MiB while reading.
package probe

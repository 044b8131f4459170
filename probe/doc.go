// Package probe holds the data side of representation probing: dataset
// sources, the Parquet embedding store, and sharding of extraction runs.
//
// Sources (OpenSource) list images in a fixed order: an ImageFolder tree
// (class indices from the sorted folder names, files in torchvision's
// order), a flat folder, a CSV/TSV manifest (file order), MNIST-style IDX
// files, WebDataset tar shards (the order of keys in the shards, shards in
// pattern or name order) or Hugging Face datasets Parquet files (row order).
// An item's Index is its position in that order; it keys sharding
// (Shard.Members: index mod N == K-1, or whole tar files when there are at
// least N) and the row order of every file, so shards, resumed runs and
// uninterrupted runs agree row for row.
//
// Opening a source lists its items (Item: ids and labels) without reading
// image data; Source.Stream delivers the images of chosen items in order.
// Folder, manifest and IDX items carry their image in the listing (a path,
// decoded pixels); WebDataset and Parquet items carry the encoded bytes
// (Item.Data) only when streamed: each tar is read once, sequentially, never
// unpacked, and a Parquet file one row group at a time, so memory does not
// grow with the data set (the listing takes about 40 bytes per item plus its
// id). An image that cannot be read (over SourceOptions.MaxImageBytes) is an
// Item with Err set, skipped and reported by the caller; a truncated or
// changed container ends the stream with an error.
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
// One writer at a time: Create takes a lock file next to the output
// (LockPath, "host pid", created exclusively) before it looks at the
// checkpoints; another writer gets a LockedError naming the holder. The
// holder refreshes the lock; one left by a dead process on this host, or
// not refreshed for LockStale on any host, is taken over with a notice.
// WriterOptions.Identity names the metadata keys of a run (weights digest,
// configuration, source); every checkpoint carries them and a resume whose
// values differ is refused (RunMismatchError), so rows of two runs never mix.
//
// Every file stores CRC-32C checksums of each column's values and of its
// key-value metadata (MetaChecksums; arrow/go v15 has no Parquet page CRCs).
// Reading verifies the columns read when a file is read to its end; a resume
// reads every column of its checkpoints first. Open refuses folders whose
// files overlap (the same id in two files of one source, or parts of two
// shardings) and files whose columns differ.
//
// Sources follow torchvision where it has a rule: ImageFolder order and
// IMG_EXTENSIONS (less .ppm/.pgm, which we do not decode), hidden entries
// included; left-out files are counted (SkippedFiles). Manifest labels are
// integers kept as given or names numbered in sorted order (LabelScheme).
// Digest fingerprints a source's item list for resume checks; for
// WebDataset shards it also covers the shards' base names and sizes and
// every member's name and size (read from the tar headers by the listing),
// for Parquet files their base names, sizes and row-group row counts.
//
// Files use Snappy compression and version-2 data pages: with version-1
// pages arrow/go v15 reallocates the repetition-level buffer of a list column
// once per row, which made 64 MiB row groups write at ~3 MB/s.
//
// Per-latent tokens (extract --tokens) live beside the Parquet file in
// FILE.tokens/NAME.bin, a raw C-order [rows, latents, channels] array of
// little-endian float16 or float32, with the sidecar NAME.json (TokenMeta:
// shape, dtype, kept latents, ids, indices, labels, model, layer, run
// identity, CRC-32C), so that numpy.memmap reads it without our code.
// TokenWriter journals rows in .NAME.bin.partial (data, then a log line
// with the row's CRC-32C), takes the same lock as the Parquet writer,
// refuses a resume of another run, and on Close writes the array in index
// order and then the sidecar, each by rename. OpenTokens maps a store, or
// the parts FILE-part-K-of-N.tokens/NAME of a sharded run merged by index.
//
// Foreign features (foreign.go) are read whole into a Foreign: a NumPy .npy [n, d]
// (float16/32/64, C order, little endian) with ids in NAME.ids.txt or ids.txt beside it
// (ReadNPYFeatures), or a clip-retrieval output folder, img_emb/img_emb_S.npy with
// metadata/metadata_S.parquet, ids from image_path or key (ReadClipRetrieval); ids must be unique,
// multi-part folders must agree in width and dtype.
//
// Memory does not grow with the data. Measured live heap peaks (arrow/go v15
// allocates from the Go heap): about 3 x RowGroupBytes while writing and
// merging (~200 MiB for the default 64 MiB), ~30 MiB while reading.
package probe

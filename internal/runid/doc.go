// Package runid is the one run-identity check of the toolkit: what makes two outputs (or two
// attempts of one run) the same computation, and the one error that refuses a mix.
//
// An identity is a map of named values, the same keys every command uses: the weights' SHA-256
// (Weights), the model and preprocessor configurations, the source's resolved path and the digest
// of its item list (SourcePath, SourceDigest), the representations stored (Layers), the numeric
// precision of the packed weights (Precision) and each command's own options (methods, steps,
// seed…). Conventions:
//
//   - A resumable command stores its identity with its first output (Parquet metadata, run.json)
//     and, on --resume, compares it with Check over every key it wrote: a difference is refused
//     before any work, naming the keys and the file.
//   - A reader of several parts (a folder, the parts of a sharded run) compares every part with
//     the first over ReaderKeys, and refuses a mix naming both files and the keys, unless the
//     user asked for it (--allow-mixed).
//   - A key absent from both sides agrees; absent from one side it differs, except where Defaults
//     gives the value old files implied (Precision: float32, before the key existed).
package runid

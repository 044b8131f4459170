// Package outfile guards the files the toolkit writes against replacing what is not an output.
//
// Every writer (safetensors dumps, figures, reports, exports, Parquet stores) writes either to a
// temporary name that is then renamed over the target, or by truncating the target. Both are
// wrong when the target already exists as something other than a regular file: a rename
// replaces a device node, a FIFO or a symlink with a plain file (as root, `--out /dev/null`
// would replace /dev/null), and truncating writes through a symlink into a file the user never
// named or blocks forever on a FIFO with no reader.
//
// Conventions:
//   - CheckTarget is called with the final path before anything is written; a path that does
//     not exist, or is a regular file, passes.
//   - Anything else (symlink, FIFO, device, socket, directory) is refused with an error that
//     names the path and what it is, wrapping ErrNotRegular. Symlinks are refused rather than
//     followed: the target of a rename must be the path the user named.
package outfile

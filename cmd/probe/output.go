package main

import (
	"io"

	"github.com/perceiverkit/perceiver/internal/outfile"
)

// refuseExisting fails when path exists (as anything: a file, a folder, a link, a device), saying
// what it is when it is not a regular file.
func refuseExisting(path string) error { return outfile.CheckNew(path) }

// writeNewFile writes a file that must not exist yet through the one safe writer
// (outfile.WriteNew): a temporary name in the same folder, synced, then linked into place, which
// fails rather than replace a file that appeared meanwhile. A failed write leaves nothing behind.
func writeNewFile(path string, fill func(io.Writer) error) error { return outfile.WriteNew(path, fill) }

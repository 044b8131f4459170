package main

import (
	"bufio"
	"fmt"
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

// pendingFile is an output written in parts through the one safe writer (outfile.File, buffered):
// commit puts it in place, abort (or a failed commit) drops it.
type pendingFile struct {
	path string
	f    *outfile.File
	bw   *bufio.Writer
}

// createPending starts writing path. Without replace an existing path is refused
// (outfile.CheckNew); with it only a path that is not a regular file is.
func createPending(path string, replace bool) (*pendingFile, error) {
	if !replace {
		if err := outfile.CheckNew(path); err != nil {
			return nil, err
		}
	}
	f, err := outfile.Create(path)
	if err != nil {
		return nil, outfile.MissingFolder(path, err)
	}
	return &pendingFile{path: path, f: f, bw: bufio.NewWriterSize(f, 1<<20)}, nil
}

func (p *pendingFile) Write(b []byte) (int, error) { return p.bw.Write(b) }

// abort drops the temporary file; a no-op after commit.
func (p *pendingFile) abort() { p.f.Abort() }

func (p *pendingFile) commit() error {
	if err := p.bw.Flush(); err != nil {
		p.f.Abort()
		return fmt.Errorf("%s: %w", p.path, err)
	}
	return p.f.Close()
}

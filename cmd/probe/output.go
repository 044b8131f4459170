package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/perceiverkit/perceiver/internal/outfile"
)

// refuseExisting fails when path exists (as anything: a file, a folder, a link, a device), saying
// what it is when it is not a regular file.
func refuseExisting(path string) error {
	if err := outfile.CheckTarget(path); err != nil {
		return err
	}
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%s already exists; remove it or choose another --out", path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// writeNewFile writes a file that must not exist yet: through a temporary name in the same
// folder, synced, then linked into place, which fails rather than replace a file that appeared
// meanwhile. A failed write (a full disk) leaves nothing behind.
func writeNewFile(path string, fill func(io.Writer) error) error {
	p, err := createPending(path, false)
	if err != nil {
		return err
	}
	defer p.abort()
	if err := fill(p); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return p.commit()
}

// pendingFile is an output being written under a temporary name in its folder (buffered); commit
// syncs it and puts it in place, abort (or a failed commit) removes it.
type pendingFile struct {
	path    string
	replace bool // --force: rename over an existing regular file instead of refusing it
	tmp     *os.File
	bw      *bufio.Writer
}

// createPending starts writing path. Without replace an existing path is refused; with it only a
// path that is not a regular file is (outfile.CheckTarget).
func createPending(path string, replace bool) (*pendingFile, error) {
	check := refuseExisting
	if replace {
		check = outfile.CheckTarget
	}
	if err := check(path); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, outfile.MissingFolder(path, err)
	}
	return &pendingFile{path: path, replace: replace, tmp: tmp, bw: bufio.NewWriterSize(tmp, 1<<20)}, nil
}

func (p *pendingFile) Write(b []byte) (int, error) { return p.bw.Write(b) }

// abort removes the temporary file; a no-op after commit.
func (p *pendingFile) abort() {
	if p.tmp != nil {
		p.tmp.Close()
		os.Remove(p.tmp.Name())
		p.tmp = nil
	}
}

func (p *pendingFile) commit() error {
	if p.tmp == nil {
		return fmt.Errorf("%s: already committed or aborted", p.path)
	}
	defer p.abort()
	name := p.tmp.Name()
	if err := p.bw.Flush(); err != nil {
		return fmt.Errorf("%s: %w", p.path, err)
	}
	if err := p.tmp.Sync(); err != nil {
		return fmt.Errorf("%s: %w", p.path, err)
	}
	if err := p.tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("%s: %w", p.path, err)
	}
	if err := p.tmp.Close(); err != nil {
		return fmt.Errorf("%s: %w", p.path, err)
	}
	p.tmp = nil
	defer os.Remove(name) // after the link, or after a failure
	if p.replace {
		if err := outfile.CheckTarget(p.path); err != nil {
			return err
		}
		return os.Rename(name, p.path)
	}
	if err := os.Link(name, p.path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s already exists; remove it or choose another --out", p.path)
		}
		// A file system without hard links: rename, after checking again.
		if err := refuseExisting(p.path); err != nil {
			return err
		}
		return os.Rename(name, p.path)
	}
	return nil
}

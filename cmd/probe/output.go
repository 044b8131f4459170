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
func writeNewFile(path string, fill func(io.Writer) error) (err error) {
	if err := refuseExisting(path); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	defer os.Remove(name) // after the link, or after a failure
	defer func() {
		if tmp != nil {
			tmp.Close()
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if err := fill(bw); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	tmp = nil
	if err := os.Link(name, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s already exists; remove it or choose another --out", path)
		}
		// A file system without hard links: rename, after checking again.
		if err := refuseExisting(path); err != nil {
			return err
		}
		return os.Rename(name, path)
	}
	return nil
}

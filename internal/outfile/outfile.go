package outfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// ErrNotRegular marks an output path that exists and is not a regular file. Test with errors.Is.
var ErrNotRegular = errors.New("not a regular file")

// ErrExists marks an output that exists when the command writes only new files. Test with errors.Is.
var ErrExists = errors.New("already exists")

// CheckTarget returns nil when path does not exist or is a regular file, and otherwise an error
// naming path and what it is. It does not follow a final symlink.
func CheckTarget(path string) error {
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err // names the path
	}
	if st.Mode().IsRegular() {
		return nil
	}
	return fmt.Errorf("%s is %s, %w: refusing to replace or write through it (name a new or regular file)", path, kind(st.Mode()), ErrNotRegular)
}

// CheckNew is CheckTarget that also refuses an existing regular file (wrapping ErrExists), for
// outputs that must not replace anything.
func CheckNew(path string) error {
	if err := CheckTarget(path); err != nil {
		return err
	}
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%s %w; remove it or choose another --out", path, ErrExists)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// kind says what a non-regular file is, for error messages.
func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m.IsDir():
		return "a directory"
	}
	return "a special file"
}

// Write writes path through a temporary file in the same folder, synced and then renamed over
// path: readers see the old file or the whole new one, never a part, and a failed fill leaves
// nothing behind. path must not exist or be a regular file (CheckTarget, again just before the
// rename); the target is never opened, so a FIFO cannot block and a symlink is never followed.
func Write(path string, fill func(io.Writer) error) error {
	return write(path, fill, false)
}

// WriteNew is Write for a file that must not exist yet: the temporary file is hard-linked into
// place, which fails rather than replace a file that appeared meanwhile (ErrExists).
func WriteNew(path string, fill func(io.Writer) error) error {
	return write(path, fill, true)
}

func write(path string, fill func(io.Writer) error, fresh bool) (err error) {
	check := CheckTarget
	if fresh {
		check = CheckNew
	}
	if err := check(path); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	defer os.Remove(name) // after the link or rename (then absent), or after a failure
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
	if fresh {
		if err := os.Link(name, path); err == nil {
			return nil
		} else if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s %w; remove it or choose another --out", path, ErrExists)
		}
		// A file system without hard links: rename, after checking again.
	}
	if err := check(path); err != nil { // it may have been replaced meanwhile
		return err
	}
	if err := os.Rename(name, path); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// WriteFile writes data to path through Write. perm is accepted for os.WriteFile's signature;
// outputs are 0644.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	return Write(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// File is an output being written under a temporary name: Close puts it in place (as Write
// does), Abort drops it.
type File struct {
	*os.File
	path string
	done bool
}

// Create starts writing path under a temporary name in its folder, after CheckTarget. Call
// Close to put the file in place or Abort to drop it; a File neither closed nor aborted leaves
// only a hidden temporary.
func Create(path string) (*File, error) {
	if err := CheckTarget(path); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, MissingFolder(path, err)
	}
	return &File{File: tmp, path: path}, nil
}

// Close syncs the temporary file and renames it over the target, checked again.
func (f *File) Close() error {
	if f.done {
		return nil
	}
	f.done = true
	name := f.File.Name()
	defer os.Remove(name)
	err := f.File.Sync()
	if cerr := f.File.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(name, 0o644)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", f.path, err)
	}
	if err := CheckTarget(f.path); err != nil {
		return err
	}
	if err := os.Rename(name, f.path); err != nil {
		return fmt.Errorf("%s: %w", f.path, err)
	}
	return nil
}

// Abort drops the temporary file; the target is untouched.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.File.Close()
	os.Remove(f.File.Name())
}

// Name returns the target path (not the temporary one).
func (f *File) Name() string { return f.path }

// WriteTo writes what wt produces to path through Write: for encoders such as a plot's
// WriterTo, which would otherwise open the path themselves.
func WriteTo(path string, wt io.WriterTo) error {
	return Write(path, func(w io.Writer) error {
		_, err := wt.WriteTo(w)
		return err
	})
}

// SavePlot writes a plot (gonum's *plot.Plot: anything with its WriterTo method) to path in the
// format the extension names, through Write; plot.Save would open the path itself.
func SavePlot[L any](path string, p interface {
	WriterTo(w, h L, format string) (io.WriterTo, error)
}, w, h L) error {
	format := strings.TrimPrefix(strings.ToLower(filepath.Ext(path)), ".")
	wt, err := p.WriterTo(w, h, format)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return WriteTo(path, wt)
}

// Append opens path for appending (creating it), for logs that grow line by line and are resumed
// (a temporary name cannot serve them). A non-regular path is refused, and the final component is
// opened without following a link (O_NOFOLLOW) and without blocking on a FIFO (O_NONBLOCK), in
// case one appeared after the check.
func Append(path string) (*os.File, error) {
	if err := CheckTarget(path); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o644)
	if err != nil {
		return nil, err
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, ErrNotRegular)
	}
	return f, nil
}

// MissingFolder rewrites err, returned when creating a file beside path (its temporary name),
// when the cause is that path's folder does not exist: the message then names that folder
// instead of a temporary file the user never named. Other errors are returned as they are.
func MissingFolder(path string, err error) error {
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	dir := filepath.Dir(path)
	if _, serr := os.Stat(dir); !errors.Is(serr, fs.ErrNotExist) {
		return err
	}
	return &missingFolderError{dir: dir, err: err}
}

// missingFolderError names the missing folder and still unwraps to the original error, so
// errors.Is(err, fs.ErrNotExist) holds.
type missingFolderError struct {
	dir string
	err error
}

func (e *missingFolderError) Error() string {
	return "the folder " + e.dir + " does not exist; create it first"
}

func (e *missingFolderError) Unwrap() error { return e.err }

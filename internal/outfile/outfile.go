package outfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrNotRegular marks an output path that exists and is not a regular file. Test with errors.Is.
var ErrNotRegular = errors.New("not a regular file")

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

// Create creates or truncates path for writing, as os.Create does, after CheckTarget.
func Create(path string) (*os.File, error) {
	if err := CheckTarget(path); err != nil {
		return nil, err
	}
	return os.Create(path)
}

// WriteFile writes data to path, as os.WriteFile does, after CheckTarget.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	if err := CheckTarget(path); err != nil {
		return err
	}
	return os.WriteFile(path, data, perm)
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

package serve

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/perceiverkit/perceiver/core/preprocess"
)

// imageExts are the file name extensions listed and served from the image folder: the formats
// core/preprocess decodes.
var imageExts = []string{".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp"}

// errNotFound is every way a name can fail to name an image of the folder: bad syntax, escape
// attempts, missing files, symlinks out. The client learns only "not found".
var errNotFound = errors.New("no such image")

// maxNameLen bounds a name before any file system call sees it.
const maxNameLen = 1024

// folder is the --images directory. Every access goes through an os.Root, which refuses paths
// that leave the directory, by ".." or through a symlink, at the moment of the open: a name that
// passes validName cannot be turned into an escape by a symlink created later.
type folder struct {
	dir  string
	root *os.Root
}

func openFolder(dir string) (*folder, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("--images: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("--images %s: not a directory", dir)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("--images: %w", err)
	}
	return &folder{dir: dir, root: root}, nil
}

func (f *folder) Close() error { return f.root.Close() }

// validName accepts slash-separated relative names of image files, each element a plain name:
// no "..", ".", empty or hidden elements, no leading slash, no backslash or control characters.
func validName(name string) bool {
	if name == "" || len(name) > maxNameLen || !utf8.ValidString(name) || !fs.ValidPath(name) {
		return false
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || r == '\\' || r == ':' {
			return false
		}
	}
	for _, elem := range strings.Split(name, "/") {
		if strings.HasPrefix(elem, ".") {
			return false
		}
	}
	return slices.Contains(imageExts, strings.ToLower(path.Ext(name)))
}

// open opens the image file name for reading, with its size. Anything but a regular file inside
// the folder is errNotFound.
func (f *folder) open(name string) (io.ReadCloser, int64, error) {
	if !validName(name) {
		return nil, 0, errNotFound
	}
	file, err := f.root.Open(name)
	if err != nil {
		return nil, 0, errNotFound
	}
	st, err := file.Stat()
	if err != nil || !st.Mode().IsRegular() {
		file.Close()
		return nil, 0, errNotFound
	}
	return file, st.Size(), nil
}

// maxFileBytes bounds what is read of a file from the folder: the decoder reads a whole file
// into memory before its header is checked against the pixel budget.
const maxFileBytes = 512 << 20

// openImage opens the image file name, refusing files over maxFileBytes with ErrTooLarge.
func (f *folder) openImage(name string) (io.ReadCloser, error) {
	file, size, err := f.open(name)
	if err != nil {
		return nil, err
	}
	if size > maxFileBytes {
		file.Close()
		return nil, fmt.Errorf("%s: file of %d MB, over the limit of %d MB: %w", name, size>>20, maxFileBytes>>20, preprocess.ErrTooLarge)
	}
	return file, nil
}

// exists reports whether name is an image file inside the folder.
func (f *folder) exists(name string) bool {
	if !validName(name) {
		return false
	}
	st, err := f.root.Stat(name)
	return err == nil && st.Mode().IsRegular()
}

// imageEntry is one row of GET /api/images.
type imageEntry struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// list walks the folder in lexical order and returns up to limit images, and whether there were
// more. Hidden entries are skipped; symlinks are listed only when they resolve to a regular file
// inside the folder.
func (f *folder) list(limit int) ([]imageEntry, bool, error) {
	var out []imageEntry
	more := false
	err := fs.WalkDir(f.root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == "." {
				return err
			}
			return nil // an unreadable subfolder hides its own files only
		}
		if p != "." && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() || !validName(p) {
			return nil
		}
		st, err := f.root.Stat(p) // follows symlinks, refusing those that leave the folder
		if err != nil || !st.Mode().IsRegular() {
			return nil
		}
		if len(out) == limit {
			more = true
			return fs.SkipAll
		}
		out = append(out, imageEntry{Name: p, Size: st.Size()})
		return nil
	})
	return out, more, err
}

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/perceiverkit/perceiver/internal/outfile"
)

// demoManifestName marks a folder as the output of `probe demo` and lists what the demo wrote
// there, so that a later run removes exactly those files and nothing of the user's.
const demoManifestName = ".probe-demo.json"

// demoManifest is the record of one demo run in its output folder. Files are recorded after the
// step that wrote them; Pending holds the outputs of a step that started (they did not exist
// before it) and may have been interrupted, whose files are not yet listed.
type demoManifest struct {
	dir     string
	Files   []string `json:"files"`   // relative to dir, slash-separated
	Pending []string `json:"pending"` // relative to dir
	// IDs holds each listed file's identity when it was written: a later run removes a file only
	// when the file at that path is still that one (a user's file of the same name stays).
	IDs map[string]fileID `json:"ids,omitempty"`
}

// fileID identifies a file by device and inode, with its size, as Lstat reports them.
type fileID struct {
	Dev  uint64 `json:"dev"`
	Ino  uint64 `json:"ino"`
	Size int64  `json:"size"`
}

func idOf(st fs.FileInfo) (fileID, bool) {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok || !st.Mode().IsRegular() {
		return fileID{}, false
	}
	return fileID{Dev: uint64(sys.Dev), Ino: uint64(sys.Ino), Size: st.Size()}, true
}

// noLinks returns an error when a component of rel below m.dir is a symbolic link (or rel does
// not exist: nil, with ok false). Removal never goes through a link: a link to the user's folder
// where the demo had its data would otherwise lose the user's files of the same names.
func (m *demoManifest) noLinks(rel string) (ok bool, err error) {
	p := m.dir
	for _, part := range strings.Split(filepath.ToSlash(filepath.Clean(filepath.FromSlash(rel))), "/") {
		p = filepath.Join(p, part)
		st, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			return false, fmt.Errorf("%s is a symbolic link, which the demo did not write and never removes through: nothing removed; remove it yourself or choose another --out", p)
		}
	}
	return true, nil
}

// prepareDemoDir makes dir ready for a demo run. A missing or empty folder is used as is. A
// previous demo output has the files its manifest lists removed (and then the folders they
// leave empty); anything else is refused, naming what is in the way, and nothing is removed.
func prepareDemoDir(dir string, outputs []string) (*demoManifest, error) {
	m := &demoManifest{dir: dir}
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		return m, m.save()
	case err != nil:
		return nil, err
	}
	raw, err := os.ReadFile(filepath.Join(dir, demoManifestName))
	if errors.Is(err, fs.ErrNotExist) {
		if len(entries) > 0 {
			return nil, fmt.Errorf("%s is not empty and is not the output of an earlier demo (no %s): "+
				"nothing removed; choose a new or empty folder with --out", dir, demoManifestName)
		}
		return m, m.save()
	}
	if err != nil {
		return nil, err
	}
	var old demoManifest
	if err := json.Unmarshal(raw, &old); err != nil {
		return nil, fmt.Errorf("%s: %v: remove the folder's demo outputs yourself or choose another --out", filepath.Join(dir, demoManifestName), err)
	}
	// Remove pending outputs first (whole: they did not exist before that run's step), then
	// the recorded files, then the folders left empty, deepest first.
	var dirs []string
	// Links anywhere on the way are refused before anything is removed.
	for _, p := range append(slices.Clone(old.Pending), old.Files...) {
		if _, err := m.inside(p); err != nil {
			return nil, err
		}
		if _, err := m.noLinks(p); err != nil {
			return nil, err
		}
	}
	for _, p := range old.Pending {
		full, _ := m.inside(p)
		if err := os.RemoveAll(full); err != nil { // RemoveAll does not follow links inside
			return nil, err
		}
	}
	for _, p := range old.Files {
		full, _ := m.inside(p)
		if ok, err := m.noLinks(p); err != nil {
			return nil, err
		} else if ok {
			st, err := os.Lstat(full)
			if err != nil {
				return nil, err
			}
			want, recorded := old.IDs[p]
			if got, regular := idOf(st); regular && recorded && got == want {
				if err := os.Remove(full); err != nil {
					return nil, err
				}
			}
		}
		for d := filepath.Dir(full); d != filepath.Clean(dir); d = filepath.Dir(d) {
			dirs = append(dirs, d)
		}
	}
	slices.SortFunc(dirs, func(a, b string) int { return len(b) - len(a) })
	for _, d := range slices.Compact(dirs) {
		os.Remove(d) // fails, as it should, on a folder that still holds something
	}
	// What remains of the demo's outputs is not the demo's.
	for _, o := range outputs {
		if _, err := os.Lstat(o); err == nil {
			return nil, fmt.Errorf("%s holds files an earlier demo did not write: nothing of them removed; move them or choose another --out", o)
		}
	}
	return m, m.save()
}

// inside turns a manifest path into a path under m.dir, refusing one that leaves it (a
// manifest is a file anyone could have edited).
func (m *demoManifest) inside(rel string) (string, error) {
	p := filepath.FromSlash(rel)
	if filepath.IsAbs(p) || !filepath.IsLocal(p) {
		return "", fmt.Errorf("%s: path %q leaves the folder: remove the demo outputs yourself", filepath.Join(m.dir, demoManifestName), rel)
	}
	return filepath.Join(m.dir, p), nil
}

// begin records that a step is about to create outputs (none of which exist yet).
func (m *demoManifest) begin(outputs ...string) error {
	for _, o := range outputs {
		rel, err := filepath.Rel(m.dir, o)
		if err != nil {
			return err
		}
		m.Pending = append(m.Pending, filepath.ToSlash(rel))
	}
	return m.save()
}

// done moves a step's outputs from Pending to Files, listing every regular file under them.
func (m *demoManifest) done(outputs ...string) error {
	for _, o := range outputs {
		rel, err := filepath.Rel(m.dir, o)
		if err != nil {
			return err
		}
		m.Pending = slices.DeleteFunc(m.Pending, func(p string) bool { return p == filepath.ToSlash(rel) })
		err = filepath.WalkDir(o, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) && path == o {
					return nil // a step that writes nothing here (e.g. a removed partial folder)
				}
				return err
			}
			if d.Type().IsRegular() {
				r, err := filepath.Rel(m.dir, path)
				if err != nil {
					return err
				}
				st, err := os.Lstat(path)
				if err != nil {
					return err
				}
				if m.IDs == nil {
					m.IDs = map[string]fileID{}
				}
				if id, ok := idOf(st); ok {
					m.IDs[filepath.ToSlash(r)] = id
				}
				m.Files = append(m.Files, filepath.ToSlash(r))
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return m.save()
}

func (m *demoManifest) save() error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(m.dir, demoManifestName)
	if !strings.HasSuffix(string(b), "\n") {
		b = append(b, '\n')
	}
	return outfile.WriteFile(path, b, 0o644)
}

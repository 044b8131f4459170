package probe

import (
	"fmt"
	"iter"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// imageExts are the file types the folder source lists: torchvision's
// IMG_EXTENSIONS (.jpg .jpeg .png .ppm .bmp .pgm .tif .tiff .webp, matched
// without regard to case) less .ppm and .pgm, which our decoders do not
// read. GIF, which torchvision leaves out, is left out too. Left-out files
// are counted (SkippedFiles): a folder holding .ppm or .pgm images numbers
// its items differently from torchvision, and the summary says so.
var imageExts = map[string]bool{
	".jpg": true, ".jpeg": true, ".png": true,
	".bmp": true, ".tif": true, ".tiff": true, ".webp": true,
}

// torchvisionOnly are torchvision's extensions we cannot decode.
var torchvisionOnly = map[string]bool{".ppm": true, ".pgm": true}

func isImageName(name string) bool { return imageExts[strings.ToLower(filepath.Ext(name))] }

// skipCounter counts the files a listing left out, by extension.
type skipCounter map[string]int

func (c skipCounter) add(name string) {
	ext := strings.ToLower(filepath.Ext(name))
	if ext == "" {
		ext = "(none)"
	}
	c[ext]++
}

func (c skipCounter) describe() (int, string) {
	total := 0
	exts := make([]string, 0, len(c))
	for e, n := range c {
		total += n
		exts = append(exts, e)
	}
	if total == 0 {
		return 0, ""
	}
	slices.Sort(exts)
	var parts []string
	for _, e := range exts {
		note := ""
		switch {
		case torchvisionOnly[e]:
			note = ", in torchvision's list but not decodable here: item numbers differ from torchvision's"
		case e == ".gif":
			note = ", not in torchvision's list"
		}
		parts = append(parts, fmt.Sprintf("%d %s%s", c[e], e, note))
	}
	return total, fmt.Sprintf("%d files left out (%s); listed: %s", total, strings.Join(parts, "; "), extList())
}

// folderSource is an ImageFolder (labels from class folders) or a flat
// folder of images (no labels).
type folderSource struct {
	root    string
	ids     []string // slash-separated, relative to root
	labels  []int    // class index per item; nil for a flat folder
	classes []string
	skips   skipCounter
}

func (s *folderSource) skipped() (int, string) { return s.skips.describe() }

func (s *folderSource) labelScheme() string {
	if s.labels == nil {
		return "no labels (flat folder)"
	}
	return namedScheme("classes (folder names)", s.classes)
}

func (s *folderSource) Len() int          { return len(s.ids) }
func (s *folderSource) Classes() []string { return slices.Clone(s.classes) }
func (s *folderSource) Name() string {
	if s.labels == nil {
		return "folder " + s.root
	}
	return "imagefolder " + s.root
}

func (s *folderSource) Stream(indices []int) iter.Seq2[Item, error] { return streamListed(s, indices) }

func (s *folderSource) Item(i int) Item {
	checkItem(i, len(s.ids))
	it := Item{Index: i, ID: s.ids[i], Path: filepath.Join(s.root, filepath.FromSlash(s.ids[i]))}
	if s.labels != nil {
		c := s.labels[i]
		it.Label, it.HasLabel, it.LabelName = int64(c), true, s.classes[c]
	}
	return it
}

func openFolder(root string) (Source, error) {
	ents, err := readDirFollow(root)
	if err != nil {
		return nil, fmt.Errorf("data source: %w", err)
	}
	var dirs, loose []string
	s := &folderSource{root: root, skips: skipCounter{}}
	for _, e := range ents {
		switch {
		case e.dir:
			dirs = append(dirs, e.name)
		case isImageName(e.name):
			loose = append(loose, e.name)
		default:
			s.skips.add(e.name)
		}
	}
	if len(dirs) > 0 {
		s.skips = skipCounter{} // ImageFolder ignores files beside the class folders
	}
	switch {
	case len(dirs) > 0 && len(loose) > 0:
		return nil, fmt.Errorf("%s: mixes class folders (%s, …) with loose images (%s, …); use one layout or a manifest", root, dirs[0], loose[0])
	case len(dirs) == 0 && len(loose) == 0:
		return nil, fmt.Errorf("%s: no images (%s) and no class folders", root, extList())
	case len(dirs) == 0:
		s.ids = loose // readDirFollow sorts by name
		return s, nil
	}
	// ImageFolder, in torchvision's order: classes by sorted name, then
	// files by (sorted folder path, sorted file name) within each class.
	s.classes = dirs
	s.labels = []int{}
	for c, class := range dirs {
		n := len(s.ids)
		visited := map[string]bool{}
		if err := walkImages(root, class, visited, s.skips, func(id string) { s.ids = append(s.ids, id); s.labels = append(s.labels, c) }); err != nil {
			return nil, err
		}
		if len(s.ids) == n {
			return nil, fmt.Errorf("%s: class folder %q holds no images (%s)", root, class, extList())
		}
	}
	return s, nil
}

func extList() string {
	exts := make([]string, 0, len(imageExts))
	for e := range imageExts {
		exts = append(exts, e)
	}
	slices.Sort(exts)
	return strings.Join(exts, " ")
}

type dirEntry struct {
	name string
	dir  bool
}

// readDirFollow lists a folder sorted by name, following symbolic links to
// tell folders from files. Hidden entries are listed, as torchvision's
// ImageFolder (os.scandir, os.walk) lists them.
func readDirFollow(dir string) ([]dirEntry, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := make([]dirEntry, 0, len(ents))
	for _, e := range ents {
		isDir := e.IsDir()
		if e.Type()&os.ModeSymlink != 0 {
			st, err := os.Stat(filepath.Join(dir, e.Name()))
			if err != nil {
				continue // a dangling link is not an image
			}
			isDir = st.IsDir()
		}
		out = append(out, dirEntry{e.Name(), isDir})
	}
	return out, nil
}

// walkImages visits the images under root/rel in the order of Python's
// sorted(os.walk(followlinks=True)) with sorted file names, as torchvision's
// ImageFolder does: folders sorted by their whole path string (so "a/b-c"
// comes before "a/b/d"), then each folder's files by name.
func walkImages(root, rel string, visited map[string]bool, skips skipCounter, visit func(id string)) error {
	files := map[string][]string{}
	var dirs []string
	var collect func(rel string) error
	collect = func(rel string) error {
		dir := filepath.Join(root, filepath.FromSlash(rel))
		real, err := filepath.EvalSymlinks(dir)
		if err == nil {
			// Absolute, so that a folder reached by a relative root and again through an
			// absolute link is one folder.
			real, err = filepath.Abs(real)
		}
		if err != nil {
			return fmt.Errorf("data source: %w", err)
		}
		if visited[real] {
			return nil // a symbolic-link cycle
		}
		visited[real] = true
		ents, err := readDirFollow(dir)
		if err != nil {
			return fmt.Errorf("data source: %w", err)
		}
		dirs = append(dirs, rel)
		for _, e := range ents {
			if e.dir {
				if err := collect(path.Join(rel, e.name)); err != nil {
					return err
				}
			} else if isImageName(e.name) {
				files[rel] = append(files[rel], e.name)
			} else {
				skips.add(e.name)
			}
		}
		return nil
	}
	if err := collect(rel); err != nil {
		return err
	}
	slices.Sort(dirs)
	for _, d := range dirs {
		for _, name := range files[d] {
			visit(path.Join(d, name))
		}
	}
	return nil
}

package probe

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// manifestSource lists images in a CSV or TSV file, in file order.
type manifestSource struct {
	file      string
	dir       string // paths are relative to the manifest's folder
	items     []Item
	classes   []string
	hasLabels bool
}

func (s *manifestSource) Len() int          { return len(s.items) }
func (s *manifestSource) Classes() []string { return slices.Clone(s.classes) }
func (s *manifestSource) Name() string      { return "manifest " + s.file }

func (s *manifestSource) Stream(indices []int) iter.Seq2[Item, error] {
	return streamListed(s, indices)
}

func (s *manifestSource) Item(i int) Item {
	checkItem(i, len(s.items))
	return s.items[i]
}

// openManifest reads rows of path[,label][,split]. A first row with a field
// "path" is a header naming the columns (path, label, split; others
// are ignored). Integer labels are kept as given; other labels are class
// names, numbered in sorted order; a mix of the two is an error. An empty
// label is unknown.
func openManifest(file string, sep rune) (Source, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("data source: %w", err)
	}
	defer f.Close()
	cr := csv.NewReader(f)
	cr.Comma = sep
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = false
	if sep == '\t' {
		cr.LazyQuotes = true // TSV rarely quotes; keep quotes in paths literal
	}
	colPath, colLabel, colSplit := 0, 1, 2
	header := false
	s := &manifestSource{file: file, dir: filepath.Dir(file)}
	var labels []string
	var lines []int
	seen := map[string]int{}
	for first := true; ; first = false {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		line, _ := cr.FieldPos(0)
		if first {
			rec[0] = strings.TrimPrefix(rec[0], "\ufeff")
			if i := slices.IndexFunc(rec, func(h string) bool { return strings.EqualFold(strings.TrimSpace(h), "path") }); i >= 0 {
				header, colPath, colLabel, colSplit = true, i, -1, -1
				for i, h := range rec {
					switch strings.ToLower(strings.TrimSpace(h)) {
					case "label":
						colLabel = i
					case "split":
						colSplit = i
					}
				}
				continue
			}
		}
		field := func(i int) string {
			if i < 0 || i >= len(rec) {
				return ""
			}
			return strings.TrimSpace(rec[i])
		}
		if len(rec) == 1 && field(0) == "" {
			continue
		}
		if !header && len(rec) > 3 {
			return nil, fmt.Errorf("%s:%d: %d fields, want path[,label][,split] (or a header line)", file, line, len(rec))
		}
		p := field(colPath)
		if p == "" {
			return nil, fmt.Errorf("%s:%d: empty path", file, line)
		}
		id := path.Clean(filepath.ToSlash(p))
		if prev, dup := seen[id]; dup {
			return nil, fmt.Errorf("%s:%d: %s is listed again (first on line %d)", file, line, p, prev)
		}
		seen[id] = line
		full := p
		if !filepath.IsAbs(p) {
			full = filepath.Join(s.dir, filepath.FromSlash(p))
		}
		s.items = append(s.items, Item{Index: len(s.items), ID: id, Path: full, Split: field(colSplit)})
		labels = append(labels, field(colLabel))
		lines = append(lines, line)
	}
	if len(s.items) == 0 {
		return nil, fmt.Errorf("%s: no rows", file)
	}
	if err := s.setLabels(labels, lines); err != nil {
		return nil, err
	}
	return s, nil
}

// setLabels keeps integer labels as given, and numbers names in sorted
// order. A manifest mixing the two is refused: numbering the names would
// silently renumber the integers too ("1.0", "2.0", "3" would become 0, 1, 2).
func (s *manifestSource) setLabels(labels []string, lines []int) error {
	firstInt, firstName := -1, -1
	names := map[string]bool{}
	for i, l := range labels {
		if l == "" {
			continue
		}
		if _, err := strconv.ParseInt(l, 10, 64); err == nil {
			if firstInt < 0 {
				firstInt = i
			}
		} else {
			names[l] = true
			if firstName < 0 {
				firstName = i
			}
		}
	}
	if firstInt >= 0 && firstName >= 0 {
		return fmt.Errorf("%s:%d: label %q is not an integer, but the label on line %d, %q, is: use integers (kept as given) or names (numbered in sorted order) throughout",
			s.file, lines[firstName], labels[firstName], lines[firstInt], labels[firstInt])
	}
	numeric := firstName < 0
	if !numeric {
		for n := range names {
			s.classes = append(s.classes, n)
		}
		slices.Sort(s.classes)
	}
	classIndex := make(map[string]int, len(s.classes))
	for i, c := range s.classes {
		classIndex[c] = i
	}
	for i, l := range labels {
		if l == "" {
			continue
		}
		it := &s.items[i]
		it.HasLabel = true
		if numeric {
			it.Label, _ = strconv.ParseInt(l, 10, 64)
		} else {
			it.Label = int64(classIndex[l])
			it.LabelName = l
		}
	}
	s.hasLabels = firstInt >= 0 || firstName >= 0
	return nil
}

func (s *manifestSource) labelScheme() string {
	switch {
	case s.classes != nil:
		return namedScheme("label names", s.classes)
	case s.hasLabels:
		return "integer labels, kept as given"
	}
	return "no labels"
}

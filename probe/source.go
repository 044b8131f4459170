package probe

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"strings"
)

// Item is one element of a Source. Index is its position in the source,
// the key of sharding and of row order. Path names the image file to decode
// (folder and manifest sources); Image holds the decoded pixels instead for
// sources that store them (IDX). LabelName and Split are "" when unknown.
type Item struct {
	Index     int
	ID        string
	Path      string
	Image     image.Image
	Label     int64
	HasLabel  bool
	LabelName string
	Split     string
}

// Row makes the store row of an item with its computed vectors.
func (it Item) Row(vectors [][]float32) Row {
	return Row{
		Index:     it.Index,
		ID:        it.ID,
		Label:     it.Label,
		HasLabel:  it.HasLabel,
		LabelName: it.LabelName,
		Split:     it.Split,
		Vectors:   vectors,
	}
}

// Source is a fixed, ordered list of labelled images. The order is
// deterministic (sorted file names, manifest order, IDX order) so that
// shards and resumed runs agree on every item's Index.
type Source interface {
	// Len is the number of items.
	Len() int
	// Item returns item i, 0 <= i < Len(); it panics outside that range.
	Item(i int) Item
	// Classes are the class names indexed by label, nil when the source
	// has no names for its labels.
	Classes() []string
	// Name describes the source for metadata, e.g. "imagefolder /data/pets".
	Name() string
}

// OpenSource opens a data set by its path:
//   - a folder of class folders (ImageFolder: label from the folder name,
//     class indices from the sorted names) or a flat folder of images (no
//     labels);
//   - a .csv or .tsv manifest of path[,label][,split] rows, optionally
//     headed by a "path,…" line, with paths relative to the manifest;
//   - an IDX images file (MNIST layout, gzipped or not), its labels file
//     found next to it, or a folder of such files (all splits in one
//     source).
func OpenSource(path string) (Source, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("data source: %w", err)
	}
	if st.IsDir() {
		if sets, err := idxSetsInDir(path); err != nil || len(sets) > 0 {
			if err != nil {
				return nil, err
			}
			return openIDX(path, sets)
		}
		return openFolder(path)
	}
	base := strings.ToLower(filepath.Base(path))
	switch {
	case strings.HasSuffix(base, ".csv"):
		return openManifest(path, ',')
	case strings.HasSuffix(base, ".tsv"):
		return openManifest(path, '\t')
	case isIDXName(base):
		return openIDXFile(path)
	}
	return nil, fmt.Errorf("%s: unknown data source: want a folder, a .csv/.tsv manifest or an IDX images file", path)
}

// itemPanic reports an out-of-range Item call, a programmer error.
type itemPanic struct {
	Index, Len int
}

func (p itemPanic) Error() string {
	return fmt.Sprintf("probe: item %d out of range [0,%d)", p.Index, p.Len)
}

func checkItem(i, n int) {
	if i < 0 || i >= n {
		panic(itemPanic{i, n})
	}
}

// LabelScheme says how a source numbered its labels, for run summaries:
// integers kept as given, or names numbered in sorted order (with the first
// few), or no labels.
func LabelScheme(src Source) string {
	if s, ok := src.(interface{ labelScheme() string }); ok {
		return s.labelScheme()
	}
	if c := src.Classes(); c != nil {
		return namedScheme("classes", c)
	}
	return ""
}

// namedScheme describes names numbered in sorted order: "3 classes numbered in sorted order: 0=ant, 1=bee, 2=wasp".
func namedScheme(what string, names []string) string {
	const shown = 5
	parts := make([]string, 0, shown+1)
	for i, n := range names {
		if i == shown {
			parts = append(parts, "…")
			break
		}
		parts = append(parts, fmt.Sprintf("%d=%s", i, n))
	}
	return fmt.Sprintf("%d %s numbered in sorted order: %s", len(names), what, strings.Join(parts, ", "))
}

// SkippedFiles reports the files a source saw but did not list (a folder's
// non-image files), with a description by extension; 0 and "" for sources
// that list everything they hold.
func SkippedFiles(src Source) (n int, why string) {
	if s, ok := src.(interface{ skipped() (int, string) }); ok {
		return s.skipped()
	}
	return 0, ""
}

// Digest identifies what a source lists: the SHA-256 of every item's index,
// id, label, label name and split, and of the pixels of sources that hold
// them (IDX). Equal digests mean the same items in the same order with the
// same labels; image files are not read, so an image replaced in place
// under the same name keeps the digest.
func Digest(src Source) string {
	h := sha256.New()
	var b []byte
	for i := 0; i < src.Len(); i++ {
		it := src.Item(i)
		b = b[:0]
		b = binary.LittleEndian.AppendUint64(b, uint64(it.Index))
		for _, s := range []string{it.ID, it.LabelName, it.Split} {
			b = binary.LittleEndian.AppendUint64(b, uint64(len(s)))
			b = append(b, s...)
		}
		if it.HasLabel {
			b = append(b, 1)
			b = binary.LittleEndian.AppendUint64(b, uint64(it.Label))
		} else {
			b = append(b, 0)
		}
		h.Write(b)
		if g, ok := it.Image.(*image.Gray); ok {
			h.Write(g.Pix)
		} else if it.Image != nil {
			bd := it.Image.Bounds()
			for y := bd.Min.Y; y < bd.Max.Y; y++ {
				for x := bd.Min.X; x < bd.Max.X; x++ {
					r, g, bl, a := it.Image.At(x, y).RGBA()
					h.Write([]byte{byte(r >> 8), byte(g >> 8), byte(bl >> 8), byte(a >> 8)})
				}
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

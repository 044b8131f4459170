package probe

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"image"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Item is one element of a Source. Index is its position in the source,
// the key of sharding and of row order. The image is one of: Path, the
// image file to decode (folder and manifest sources); Image, the decoded
// pixels (IDX); Data, the encoded image read from a container (WebDataset
// member, Parquet cell), set only on items from Source.Stream. Err, set
// only by Stream, says why this item's image could not be read (a member
// over the size limit): the caller skips and reports the item, and the
// stream goes on. LabelName and Split are "" when unknown.
type Item struct {
	Index     int
	ID        string
	Path      string
	Image     image.Image
	Data      []byte
	Err       error
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
// deterministic (sorted file names, manifest order, IDX order, the order of
// keys in tar shards, Parquet row order) so that shards and resumed runs
// agree on every item's Index.
//
// Opening a source lists its items (ids, labels) without reading image
// data; Item returns that listing. Stream delivers the images: sources
// that keep images in containers (WebDataset tars, Parquet files) read
// them there once, sequentially, so Item alone carries no image for them
// (no Path, Image or Data) and every reader of pixels uses Stream.
type Source interface {
	// Len is the number of items.
	Len() int
	// Item returns the listing of item i, 0 <= i < Len(); it panics
	// outside that range.
	Item(i int) Item
	// Stream yields the items at indices (ascending, each in [0, Len()))
	// with their images, in that order. A non-nil error ends the stream
	// (an unreadable or truncated container, or a container changed
	// since the listing); a single unreadable image is an Item with Err
	// set instead. Breaking out of the loop closes what Stream opened.
	Stream(indices []int) iter.Seq2[Item, error]
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
//   - WebDataset tar shards: a .tar or .tar.gz file, a brace pattern such
//     as train-{000000..000146}.tar, a glob, or a folder of tar files
//     (see source_wds.go);
//   - Hugging Face datasets Parquet files: a .parquet file, a glob, or a
//     folder of them (see source_hfparquet.go).
//
// It uses the default SourceOptions.
func OpenSource(path string) (Source, error) { return OpenSourceWith(path, SourceOptions{}) }

// SourceOptions are the settings of the container sources; the zero value
// is the default. Folder, manifest and IDX sources ignore them.
type SourceOptions struct {
	// LabelField is the field of a WebDataset sample's json member that
	// holds its label when it has no cls member (default "label").
	LabelField string
	// ImageColumn, LabelColumn and IDColumn name the Parquet columns of
	// the image (struct<bytes, path> or binary; default "image"), the
	// integer label (default "label"; none when absent) and the id
	// (default: image.path when every row has a distinct one, else
	// FILE:ROW).
	ImageColumn, LabelColumn, IDColumn string
	// MaxImageBytes skips (Item.Err) an encoded image larger than this
	// without reading it (default DefaultMaxImageBytes).
	MaxImageBytes int64
}

// DefaultMaxImageBytes is the largest encoded image a container source
// reads: 4 bytes for each of Pillow's MAX_IMAGE_PIXELS (89,478,485), the
// size of the largest decodable image stored raw as RGBA.
const DefaultMaxImageBytes = 4 * 89478485

func (o SourceOptions) withDefaults() SourceOptions {
	if o.LabelField == "" {
		o.LabelField = "label"
	}
	if o.ImageColumn == "" {
		o.ImageColumn = "image"
	}
	if o.MaxImageBytes <= 0 {
		o.MaxImageBytes = DefaultMaxImageBytes
	}
	return o
}

// OpenSourceWith opens a data set by its path (see OpenSource) with the
// given options.
func OpenSourceWith(path string, opt SourceOptions) (Source, error) {
	opt = opt.withDefaults()
	if isBracePattern(path) || strings.ContainsAny(path, "*?[") {
		if _, err := os.Stat(path); err != nil { // a file named with braces is a file
			return openPattern(path, opt)
		}
	}
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
		if tars, parquets, err := containersInDir(path); err != nil {
			return nil, err
		} else if len(tars) > 0 {
			return openWDS(path, tars, opt)
		} else if len(parquets) > 0 {
			return openHFParquet(path, parquets, opt)
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
	case isTarName(base):
		return openWDS(path, []string{path}, opt)
	case strings.HasSuffix(base, ".parquet"):
		return openHFParquet(path, []string{path}, opt)
	}
	return nil, fmt.Errorf("%s: unknown data source: want a folder, a .csv/.tsv manifest, an IDX images file, WebDataset .tar shards or .parquet files", path)
}

// openPattern opens the files a brace pattern or glob names: tar shards or
// Parquet files, not a mix.
func openPattern(pattern string, opt SourceOptions) (Source, error) {
	var files []string
	if isBracePattern(pattern) {
		names, err := expandBraces(pattern)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if _, err := os.Stat(n); err != nil {
				return nil, fmt.Errorf("%s: shard %s is missing (the first of the pattern's %d names not found)", pattern, n, len(names))
			}
		}
		files = names
	} else {
		m, err := filepath.Glob(pattern)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", pattern, err)
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("%s: no file matches", pattern)
		}
		slices.Sort(m)
		files = m
	}
	var tars, parquets []string
	for _, f := range files {
		switch b := strings.ToLower(filepath.Base(f)); {
		case isTarName(b):
			tars = append(tars, f)
		case strings.HasSuffix(b, ".parquet"):
			parquets = append(parquets, f)
		default:
			return nil, fmt.Errorf("%s: %s is neither a .tar shard nor a .parquet file", pattern, f)
		}
	}
	switch {
	case len(tars) > 0 && len(parquets) > 0:
		return nil, fmt.Errorf("%s: matches both tar shards (%s) and Parquet files (%s); name one kind", pattern, tars[0], parquets[0])
	case len(tars) > 0:
		return openWDS(pattern, tars, opt)
	}
	return openHFParquet(pattern, parquets, opt)
}

// containersInDir lists a folder's tar shards, or else its Parquet files
// (sorted by name), when it holds no subfolders and no images: such a
// folder is a sharded data set, not an image folder.
func containersInDir(dir string) (tars, parquets []string, err error) {
	ents, err := readDirFollow(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("data source: %w", err)
	}
	for _, e := range ents {
		if e.dir || isImageName(e.name) {
			return nil, nil, nil
		}
		switch b := strings.ToLower(e.name); {
		case isTarName(b):
			tars = append(tars, filepath.Join(dir, e.name))
		case strings.HasSuffix(b, ".parquet"):
			parquets = append(parquets, filepath.Join(dir, e.name))
		}
	}
	if len(tars) > 0 {
		// img2dataset writes a metadata .parquet beside each tar: the tars are the data set.
		parquets = nil
	}
	return tars, parquets, nil
}

// streamListed is Stream for sources whose listing holds the image (a file
// path or decoded pixels): it yields Item(i) for each index.
func streamListed(s Source, indices []int) iter.Seq2[Item, error] {
	return func(yield func(Item, error) bool) {
		for _, i := range indices {
			if !yield(s.Item(i), nil) {
				return
			}
		}
	}
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
// under the same name keeps the digest. Container sources add what their
// listing read: a WebDataset the shards' base names and sizes and every
// member's name and size, a Parquet source the files' base names, sizes
// and row counts.
func Digest(src Source) string {
	h := sha256.New()
	if c, ok := src.(interface{ containerDigest() []byte }); ok {
		h.Write(c.containerDigest())
	}
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

package probe

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"image"
	"io"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// FashionMNISTClasses are the class names of Fashion-MNIST, by label.
var FashionMNISTClasses = []string{
	"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
	"Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
}

const (
	idxImagesTag = "images-idx3-ubyte"
	idxLabelsTag = "labels-idx1-ubyte"
)

func isIDXName(base string) bool {
	return strings.Contains(base, "idx1-ubyte") || strings.Contains(base, "idx3-ubyte")
}

// idxSet is one images file with its labels: train-… or t10k-….
type idxSet struct {
	images, labels string // labels is "" when there is no labels file
	split          string
}

// idxPart is a loaded idxSet.
type idxPart struct {
	split      string
	prefix     string // id prefix, "" for a single file
	n          int
	rows, cols int
	pix        []byte
	labels     []byte
}

// idxSource serves the images of one or more IDX sets, in order.
type idxSource struct {
	name    string
	parts   []idxPart
	starts  []int // index of each part's first item
	total   int
	classes []string
}

func (s *idxSource) Len() int          { return s.total }
func (s *idxSource) Classes() []string { return slices.Clone(s.classes) }
func (s *idxSource) Name() string      { return "idx " + s.name }

func (s *idxSource) Stream(indices []int) iter.Seq2[Item, error] { return streamListed(s, indices) }

func (s *idxSource) Item(i int) Item {
	checkItem(i, s.total)
	k := len(s.starts) - 1
	for s.starts[k] > i {
		k--
	}
	p := &s.parts[k]
	j := i - s.starts[k]
	img := image.NewGray(image.Rect(0, 0, p.cols, p.rows))
	size := p.rows * p.cols
	copy(img.Pix, p.pix[j*size:(j+1)*size])
	it := Item{Index: i, ID: p.prefix + strconv.Itoa(j), Image: img, Split: p.split}
	if p.labels != nil {
		it.Label, it.HasLabel = int64(p.labels[j]), true
		if int(it.Label) < len(s.classes) {
			it.LabelName = s.classes[it.Label]
		}
	}
	return it
}

// idxSplit names the split of an IDX file from its MNIST-style prefix.
func idxSplit(base string) string {
	switch {
	case strings.HasPrefix(base, "train"):
		return "train"
	case strings.HasPrefix(base, "t10k"), strings.HasPrefix(base, "test"):
		return "test"
	}
	return ""
}

// labelsFor finds the labels file next to an images file: the same name
// with "labels-idx1-ubyte", gzipped or not.
func labelsFor(images string) string {
	dir, base := filepath.Split(images)
	i := strings.Index(base, idxImagesTag)
	if i < 0 {
		return ""
	}
	stem := base[:i] + idxLabelsTag
	for _, cand := range []string{stem + base[i+len(idxImagesTag):], stem + ".gz", stem} {
		if st, err := os.Stat(filepath.Join(dir, cand)); err == nil && !st.IsDir() {
			return filepath.Join(dir, cand)
		}
	}
	return ""
}

func openIDXFile(path string) (Source, error) {
	base := filepath.Base(path)
	if !strings.Contains(base, "idx3-ubyte") {
		return nil, fmt.Errorf("%s: is an IDX labels file; pass the images file (…-%s)", path, idxImagesTag)
	}
	return openIDX(path, []idxSet{{images: path, labels: labelsFor(path), split: idxSplit(base)}})
}

// idxSetsInDir lists the IDX images files of a folder, train before test;
// none when the folder holds no IDX images.
func idxSetsInDir(dir string) ([]idxSet, error) {
	ents, err := readDirFollow(dir)
	if err != nil {
		return nil, fmt.Errorf("data source: %w", err)
	}
	var sets []idxSet
	splits := map[string]string{}
	for _, e := range ents {
		if e.dir || !strings.Contains(e.name, idxImagesTag) {
			continue
		}
		p := filepath.Join(dir, e.name)
		sp := idxSplit(e.name)
		if prev, dup := splits[sp]; dup {
			return nil, fmt.Errorf("%s: both %s and %s are %q images; pass one file", dir, prev, e.name, sp)
		}
		splits[sp] = e.name
		sets = append(sets, idxSet{images: p, labels: labelsFor(p), split: sp})
	}
	order := map[string]int{"train": 0, "test": 1, "": 2}
	slices.SortStableFunc(sets, func(a, b idxSet) int { return order[a.split] - order[b.split] })
	return sets, nil
}

func openIDX(name string, sets []idxSet) (Source, error) {
	s := &idxSource{name: name}
	for _, set := range sets {
		dims, pix, err := readIDX(set.images)
		if err != nil {
			return nil, err
		}
		if len(dims) != 3 {
			return nil, fmt.Errorf("%s: IDX images need 3 dimensions [n, rows, cols], got %v", set.images, dims)
		}
		p := idxPart{split: set.split, n: dims[0], rows: dims[1], cols: dims[2], pix: pix}
		if len(sets) > 1 {
			p.prefix = set.split + "/"
		}
		if set.labels != "" {
			ldims, labels, err := readIDX(set.labels)
			if err != nil {
				return nil, err
			}
			if len(ldims) != 1 || ldims[0] != p.n {
				return nil, fmt.Errorf("%s: %v labels for %d images in %s", set.labels, ldims, p.n, filepath.Base(set.images))
			}
			p.labels = labels
		}
		s.starts = append(s.starts, s.total)
		s.total += p.n
		s.parts = append(s.parts, p)
	}
	if strings.Contains(strings.ToLower(name), "fashion") {
		s.classes = FashionMNISTClasses
		for _, p := range s.parts {
			if i := slices.IndexFunc(p.labels, func(l byte) bool { return int(l) >= len(s.classes) }); i >= 0 {
				return nil, fmt.Errorf("%s: label %d at %d is not a Fashion-MNIST class", name, p.labels[i], i)
			}
		}
	}
	return s, nil
}

// readIDX reads an IDX file of unsigned bytes (magic 0x00 0x00 0x08 ndim,
// big-endian uint32 sizes, then the data), gzipped or not.
func readIDX(path string) (dims []int, data []byte, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("data source: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<16)
	var r io.Reader = br
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		defer gz.Close()
		r = gz
	}
	var head [4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, nil, fmt.Errorf("%s: IDX header: %w", path, err)
	}
	if head[0] != 0 || head[1] != 0 {
		return nil, nil, fmt.Errorf("%s: not an IDX file (magic % x)", path, head)
	}
	if head[2] != 0x08 {
		return nil, nil, fmt.Errorf("%s: IDX element type %#02x unsupported (want 0x08, unsigned byte)", path, head[2])
	}
	if head[3] == 0 || head[3] > 4 {
		return nil, nil, fmt.Errorf("%s: IDX with %d dimensions unsupported", path, head[3])
	}
	sizes := make([]uint32, head[3])
	if err := binary.Read(r, binary.BigEndian, sizes); err != nil {
		return nil, nil, fmt.Errorf("%s: IDX sizes: %w", path, err)
	}
	total := int64(1)
	for _, d := range sizes {
		dims = append(dims, int(d))
		total *= int64(d)
		if total > 1<<34 {
			return nil, nil, fmt.Errorf("%s: IDX sizes %v are implausibly large", path, sizes)
		}
	}
	// Read one byte more than declared to catch trailing data, without
	// trusting the header with a huge allocation up front.
	data, err = io.ReadAll(io.LimitReader(r, total+1))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(data)) != total {
		return nil, nil, fmt.Errorf("%s: IDX sizes %v need %d bytes of data, file holds %d%s", path, sizes, total, len(data), map[bool]string{true: " or more"}[int64(len(data)) > total])
	}
	return dims, data, nil
}

func (s *idxSource) labelScheme() string {
	for _, p := range s.parts {
		if p.labels != nil {
			if s.classes != nil {
				return fmt.Sprintf("integer labels from the IDX labels file, as given (names: %s)", strings.Join(s.classes[:min(3, len(s.classes))], ", ")+", …")
			}
			return "integer labels from the IDX labels file, as given"
		}
	}
	return "no labels (no IDX labels file)"
}

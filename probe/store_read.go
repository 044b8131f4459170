package probe

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/apache/arrow/go/v15/parquet"
	"github.com/apache/arrow/go/v15/parquet/file"
	"github.com/apache/arrow/go/v15/parquet/pqarrow"
	"github.com/perceiverkit/perceiver/internal/runid"
	"gonum.org/v1/gonum/mat"
)

// storeFile is one open Parquet file of the store layout.
type storeFile struct {
	path string
	f    *os.File
	pr   *file.Reader
	cols []Column
	meta map[string]string
	rows int
	sums map[string]uint32 // MetaChecksums; nil for files written before them
}

// openStoreFile opens path and checks that it has the store's layout.
func openStoreFile(path string) (sf *storeFile, err error) {
	// arrow/go can panic on malformed input; report it as a bad file.
	defer func() {
		if r := recover(); r != nil {
			sf, err = nil, fmt.Errorf("%s: corrupt Parquet file: %v", path, r)
		}
	}()
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	// A buffered stream keeps memory to a page at a time instead of whole
	// column chunks, so reading many files at once stays bounded.
	rp := parquet.NewReaderProperties(memory.DefaultAllocator)
	rp.BufferedStreamEnabled = true
	rp.BufferSize = 64 << 10
	pr, err := file.NewParquetReader(f, file.WithReadProps(rp))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: not a readable Parquet file: %w", path, err)
	}
	sf = &storeFile{path: path, f: f, pr: pr, rows: int(pr.NumRows()), meta: map[string]string{}}
	kv := pr.MetaData().KeyValueMetadata()
	keys, vals := kv.Keys(), kv.Values()
	for i, k := range keys {
		if k != metaArrowSchema {
			sf.meta[k] = vals[i]
		}
	}
	fail := func(format string, a ...any) (*storeFile, error) {
		sf.close()
		return nil, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, a...))
	}
	// The row counts size allocations: check the file's against its row groups'.
	total := int64(0)
	for g := 0; g < pr.NumRowGroups(); g++ {
		n := pr.MetaData().RowGroup(g).NumRows()
		if n < 0 {
			total = -1
			break
		}
		total += n
	}
	if total != pr.NumRows() || total < 0 {
		sf.close()
		return nil, fmt.Errorf("%s: the footer's row counts disagree (%d in the file, %d in its row groups): damaged file", path, pr.NumRows(), total)
	}
	summed := maps.Clone(sf.meta)
	if i := slices.Index(keys, metaArrowSchema); i >= 0 {
		summed[metaArrowSchema] = vals[i]
	}
	if sf.sums, err = parseChecksums(path, summed); err != nil {
		sf.close()
		return nil, err
	}
	switch f, ok := sf.meta[MetaFormat]; {
	case !ok && sf.meta[MetaColumns] != "":
		sf.close()
		return nil, fmt.Errorf("%s: no %q metadata: damaged file", path, MetaFormat)
	case ok && f != "1" && f != formatValue:
		sf.close()
		return nil, fmt.Errorf("%s: store format %q, this program reads 1 and %s", path, f, formatValue)
	case f == formatValue && sf.sums == nil:
		sf.close()
		return nil, fmt.Errorf("%s: no %q metadata: damaged file", path, MetaChecksums)
	}
	js, ok := sf.meta[MetaColumns]
	if !ok {
		return fail("no %q metadata: not written by the probe store", MetaColumns)
	}
	if err := json.Unmarshal([]byte(js), &sf.cols); err != nil {
		return fail("metadata %q: %v", MetaColumns, err)
	}
	if err := validateColumns(sf.cols); err != nil {
		return fail("metadata %q: %v", MetaColumns, err)
	}
	fr, err := pqarrow.NewFileReader(pr, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		return fail("%v", err)
	}
	got, err := fr.Schema()
	if err != nil {
		return fail("%v", err)
	}
	want := arrowSchema(sf.cols)
	if len(got.Fields()) != len(want.Fields()) {
		return fail("has %d columns, want %d", len(got.Fields()), len(want.Fields()))
	}
	for i, w := range want.Fields() {
		if g := got.Field(i); g.Name != w.Name || !sameStoreType(g.Type, w.Type) {
			return fail("column %d is %s %s, want %s %s", i, g.Name, g.Type, w.Name, w.Type)
		}
	}
	return sf, nil
}

// sameStoreType compares column types, ignoring the nullability of list
// elements: arrow/go v15 reads non-nullable elements back as nullable.
func sameStoreType(got, want arrow.DataType) bool {
	g, ok1 := got.(*arrow.FixedSizeListType)
	w, ok2 := want.(*arrow.FixedSizeListType)
	if ok1 && ok2 {
		return g.Len() == w.Len() && arrow.TypeEqual(g.Elem(), w.Elem())
	}
	return arrow.TypeEqual(got, want)
}

func (sf *storeFile) close() error { return sf.pr.Close() }

// cursor walks the rows of one file in stored order, a record batch at a time.
type cursor struct {
	sf    *storeFile
	rank  int // files of lower rank come first; equal ranks merge by index
	rr    pqarrow.RecordReader
	rec   arrow.Record
	row   int
	id    *array.String
	index []int64
	label *array.Int64
	lname *array.String
	split *array.String
	vecs  [][]float32 // per selected column, the record's values, row-major
	dims  []int
	remap []int // record column of each selected vector column
	seen  int   // rows read so far, checked against the footer at the end
	owned bool  // close sf on release
	sums  *checksums
}

// newCursor reads the fixed columns and the vector columns at positions sel
// (indices into sf.cols, in the order the caller wants them).
func newCursor(sf *storeFile, rank int, sel []int, batchRows int) (*cursor, error) {
	fr, err := pqarrow.NewFileReader(sf.pr, pqarrow.ArrowReadProperties{BatchSize: int64(batchRows)}, memory.DefaultAllocator)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", sf.path, err)
	}
	fields := fr.Manifest.Fields
	var leaves []int
	// Record columns come back in leaf order, so request them ascending
	// and remember where each wanted column lands.
	sorted := slices.Clone(sel)
	slices.Sort(sorted)
	for i := 0; i < numFixed; i++ {
		leaves = append(leaves, leafOf(&fields[i]))
	}
	for _, j := range sorted {
		leaves = append(leaves, leafOf(&fields[numFixed+j]))
	}
	rr, err := fr.GetRecordReader(context.Background(), leaves, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", sf.path, err)
	}
	c := &cursor{sf: sf, rank: rank, rr: rr, vecs: make([][]float32, len(sel)), dims: make([]int, len(sel))}
	names := []string{ColID, ColIndex, ColLabel, ColLabelName, ColSplit}
	for _, j := range sel {
		names = append(names, sf.cols[j].Name)
	}
	c.sums = newChecksums(names)
	for k, j := range sel {
		c.dims[k] = sf.cols[j].Dim
	}
	c.remap = make([]int, len(sel))
	for k, j := range sel {
		c.remap[k] = numFixed + slices.Index(sorted, j)
	}
	return c, nil
}

// leafOf finds a field's Parquet leaf column. Nested fields carry ColIndex
// 0 rather than -1 in arrow/go v15, so walk the children instead of IsLeaf.
func leafOf(f *pqarrow.SchemaField) int {
	for len(f.Children) > 0 {
		f = &f.Children[0]
	}
	return f.ColIndex
}

// next moves to the next row; false at the end of the file.
func (c *cursor) next() (ok bool, err error) {
	c.row++
	if c.rec != nil && c.row < int(c.rec.NumRows()) {
		return true, nil
	}
	defer func() {
		if r := recover(); r != nil {
			ok, err = false, fmt.Errorf("%s: corrupt Parquet data: %v", c.sf.path, r)
		}
	}()
	return c.load()
}

// load reads the next non-empty record batch.
func (c *cursor) load() (bool, error) {
	for c.rr != nil {
		if !c.rr.Next() {
			if err := c.rr.Err(); err != nil && !errors.Is(err, io.EOF) {
				return false, fmt.Errorf("%s: %w", c.sf.path, err)
			}
			c.release()
			// The reader can end early on damaged pages without an error.
			if c.seen != c.sf.rows {
				return false, fmt.Errorf("%s: read %d rows, the footer says %d: damaged file", c.sf.path, c.seen, c.sf.rows)
			}
			return false, c.sums.verify(c.sf.path, c.sf.sums)
		}
		rec := c.rr.Record()
		if rec.NumRows() == 0 {
			continue
		}
		if err := c.bind(rec); err != nil {
			return false, err
		}
		c.seen += int(rec.NumRows())
		return true, nil
	}
	return false, nil
}

func (c *cursor) bind(rec arrow.Record) error {
	var ok [5]bool
	c.rec, c.row = rec, 0
	c.id, ok[0] = rec.Column(0).(*array.String)
	idx, ok1 := rec.Column(1).(*array.Int64)
	c.label, ok[2] = rec.Column(2).(*array.Int64)
	c.lname, ok[3] = rec.Column(3).(*array.String)
	c.split, ok[4] = rec.Column(4).(*array.String)
	ok[1] = ok1
	if slices.Contains(ok[:], false) {
		return fmt.Errorf("%s: fixed columns have unexpected types", c.sf.path)
	}
	c.index = idx.Int64Values()
	for k, col := range c.remap {
		fsl, isList := rec.Column(col).(*array.FixedSizeList)
		if !isList {
			return fmt.Errorf("%s: column %s is %s, want a fixed-size list", c.sf.path, rec.ColumnName(col), rec.Column(col).DataType())
		}
		if fsl.NullN() != 0 {
			return fmt.Errorf("%s: column %s has null vectors", c.sf.path, rec.ColumnName(col))
		}
		vals, isF32 := fsl.ListValues().(*array.Float32)
		if !isF32 {
			return fmt.Errorf("%s: column %s does not hold float32", c.sf.path, rec.ColumnName(col))
		}
		all := vals.Float32Values()
		start := fsl.Data().Offset() * c.dims[k]
		if len(all) < start+int(rec.NumRows())*c.dims[k] {
			return fmt.Errorf("%s: column %s holds %d values for %d rows of %d", c.sf.path, rec.ColumnName(col), len(all)-start, rec.NumRows(), c.dims[k])
		}
		c.vecs[k] = all[start : start+int(rec.NumRows())*c.dims[k]]
		c.sums.add(numFixed+k, fsl)
	}
	for j := 0; j < numFixed; j++ {
		c.sums.add(j, rec.Column(j))
	}
	return nil
}

func (c *cursor) release() {
	c.rec = nil
	if c.rr != nil {
		c.rr.Release()
		c.rr = nil
	}
	if c.owned {
		c.sf.close()
		c.owned = false
	}
}

func (c *cursor) curIndex() int64 { return c.index[c.row] }

func (c *cursor) curID() string { return c.id.Value(c.row) }

// curRow describes the current row; its strings and vectors alias the
// record and are valid until the cursor moves.
func (c *cursor) curRow(r *Row) {
	i := c.row
	r.Index = int(c.index[i])
	r.ID = c.id.Value(i)
	r.HasLabel = c.label.IsValid(i)
	r.Label = 0
	if r.HasLabel {
		r.Label = c.label.Value(i)
	}
	r.LabelName, r.Split = "", ""
	if c.lname.IsValid(i) {
		r.LabelName = c.lname.Value(i)
	}
	if c.split.IsValid(i) {
		r.Split = c.split.Value(i)
	}
	if cap(r.Vectors) < len(c.vecs) {
		r.Vectors = make([][]float32, len(c.vecs))
	}
	r.Vectors = r.Vectors[:len(c.vecs)]
	for k, v := range c.vecs {
		d := c.dims[k]
		r.Vectors[k] = v[i*d : (i+1)*d : (i+1)*d]
	}
}

// mergeInput is one file for a merger: already open (sf), or a path
// opened only when its rows are due and closed when they are consumed.
type mergeInput struct {
	sf    *storeFile
	path  string
	first int64 // the file's smallest index when known, else -1
	rank  int
}

// merger yields the rows of several files ordered by (rank, index). Inputs
// with a known first index, and ranks after the first, are opened only when
// their rows are due, so the open files and cursors stay few when the files
// cover disjoint ranges (checkpoints of a run, files read one by one).
type merger struct {
	sel       []int
	cols      []Column // expected columns of files opened by path
	batchRows int
	pending   []mergeInput // not yet opened, in (rank, first) order
	h         cursorHeap
	last      *cursor
	// dedupe drops a row whose index and id equal the previous row's (a
	// chunk left behind after its rows reached the final file); otherwise a
	// repeated index is an error.
	dedupe    bool
	prevRank  int
	prevIndex int64
	prevID    string
	started   bool
}

func newMerger(inputs []mergeInput, cols []Column, sel []int, batchRows int, dedupe bool) (*merger, error) {
	m := &merger{sel: sel, cols: cols, batchRows: max(batchRows, 1), dedupe: dedupe}
	for _, in := range inputs {
		if in.first >= 0 || in.rank > 0 {
			m.pending = append(m.pending, in)
			continue
		}
		if err := m.open(in); err != nil {
			m.close()
			return nil, err
		}
	}
	sort.SliceStable(m.pending, func(a, b int) bool {
		return pendingBefore(m.pending[a], m.pending[b].rank, m.pending[b].first)
	})
	return m, nil
}

func (m *merger) open(in mergeInput) error {
	owned := false
	if in.sf == nil {
		sf, err := openStoreFile(in.path)
		if err != nil {
			return err
		}
		if !slices.EqualFunc(sf.cols, m.cols, sameColumn) {
			sf.close()
			return fmt.Errorf("%s: columns %s, want %s", in.path, columnList(sf.cols), columnList(m.cols))
		}
		in.sf, owned = sf, true
	}
	c, err := newCursor(in.sf, in.rank, m.sel, m.batchRows)
	if err == nil {
		c.owned = owned
		c.row = -1
		var ok bool
		if ok, err = c.next(); err == nil && ok {
			heap.Push(&m.h, c)
			return nil
		}
	}
	if owned {
		in.sf.close()
	}
	return err
}

// pendingBefore reports whether an unopened input may hold a row ordered
// before (rank, index).
func pendingBefore(in mergeInput, rank int, index int64) bool {
	if in.rank != rank {
		return in.rank < rank
	}
	return in.first <= index
}

// next returns the cursor holding the next row, or nil at the end.
func (m *merger) next() (*cursor, error) {
	for {
		if m.last != nil {
			ok, err := m.last.next()
			if err != nil {
				return nil, err
			}
			if ok {
				heap.Fix(&m.h, 0)
			} else {
				heap.Pop(&m.h)
			}
			m.last = nil
		}
		for len(m.pending) > 0 && (len(m.h) == 0 || pendingBefore(m.pending[0], m.h[0].rank, m.h[0].curIndex())) {
			in := m.pending[0]
			m.pending = m.pending[1:]
			if err := m.open(in); err != nil {
				return nil, err
			}
		}
		if len(m.h) == 0 {
			return nil, nil
		}
		c := m.h[0]
		m.last = c
		idx := c.curIndex()
		if m.started && c.rank == m.prevRank && idx == m.prevIndex {
			id := c.curID()
			if m.dedupe && id == m.prevID {
				continue
			}
			return nil, fmt.Errorf("%s: index %d holds both %q and %q", c.sf.path, idx, m.prevID, id)
		}
		m.started, m.prevRank, m.prevIndex, m.prevID = true, c.rank, idx, strings.Clone(c.curID())
		return c, nil
	}
}

func (m *merger) close() {
	for _, c := range m.h {
		c.release()
	}
	m.h = nil
}

type cursorHeap []*cursor

func (h cursorHeap) Len() int { return len(h) }
func (h cursorHeap) Less(a, b int) bool {
	if h[a].rank != h[b].rank {
		return h[a].rank < h[b].rank
	}
	return h[a].curIndex() < h[b].curIndex()
}
func (h cursorHeap) Swap(a, b int) { h[a], h[b] = h[b], h[a] }
func (h *cursorHeap) Push(x any)   { *h = append(*h, x.(*cursor)) }
func (h *cursorHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	c.release()
	return c
}

// Reader reads one store file or a set of them (the parts of a sharded run).
type Reader struct {
	files []*storeFile
	ranks []int
	cols  []Column
	meta  map[string]string
	rows  int
}

var partName = regexp.MustCompile(`^(.*)-part-(\d+)-of-(\d+)(\.[^.]*)?$`)

// Open opens a store file, or a folder of them, for reading. A folder (or a
// path whose file is absent but whose "-part-K-of-N" siblings exist) that
// holds exactly the N parts of one sharded run reads as the unsharded file:
// rows merge by index. Other folders read their .parquet files one after the
// other in name order. Hidden files (unfinished runs) are ignored. All files
// must have the same vector columns and the same run identity
// (runid.ReaderKeys: weights, source, layers, precision): a mix is refused
// naming the two files and the keys. OpenWith allows a deliberate mix.
func Open(pathOrDir string) (*Reader, error) { return OpenWith(pathOrDir, OpenOptions{}) }

// OpenOptions configure OpenWith.
type OpenOptions struct {
	// AllowMixed reads files of different runs together (other weights,
	// sources, layers or precision): for a deliberate cross-model folder.
	AllowMixed bool
	// Notify receives notices, such as a lone part file being read on its
	// own. Nil prints them to standard error.
	Notify func(msg string)
}

// OpenWith is Open with options.
func OpenWith(pathOrDir string, opt OpenOptions) (*Reader, error) {
	if opt.Notify == nil {
		opt.Notify = func(msg string) { fmt.Fprintln(os.Stderr, "probe:", msg) }
	}
	st, err := os.Stat(pathOrDir)
	var paths []string
	named := false // the user named this one file
	switch {
	case err == nil && !st.IsDir():
		paths = []string{pathOrDir}
		named = true
	case err == nil:
		ents, err := os.ReadDir(pathOrDir)
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if !e.IsDir() && !strings.HasPrefix(e.Name(), ".") && strings.EqualFold(filepath.Ext(e.Name()), ".parquet") {
				paths = append(paths, filepath.Join(pathOrDir, e.Name()))
			}
		}
		if len(paths) == 0 {
			return nil, fmt.Errorf("%s: no .parquet files", pathOrDir)
		}
	case errors.Is(err, os.ErrNotExist):
		ext := filepath.Ext(pathOrDir)
		pattern := globEscape(strings.TrimSuffix(pathOrDir, ext)) + "-part-*-of-*" + globEscape(ext)
		paths, _ = filepath.Glob(pattern)
		if len(paths) == 0 {
			return nil, err
		}
	default:
		return nil, err
	}
	sort.Strings(paths)
	var ranks []int
	if named {
		// A part named on its own is what the user asked for: read it, and say what it is.
		ranks = []int{0}
		if m := partName.FindStringSubmatch(filepath.Base(pathOrDir)); m != nil && m[3] != "1" {
			opt.Notify(fmt.Sprintf("%s is part %s of %s of a sharded output: reading that part only", pathOrDir, m[2], m[3]))
		}
	} else if ranks, err = partRanks(paths); err != nil {
		return nil, fmt.Errorf("%s: %w", pathOrDir, err)
	}
	r := &Reader{ranks: ranks}
	for _, p := range paths {
		sf, err := openStoreFile(p)
		if err != nil {
			r.Close()
			return nil, err
		}
		if len(r.files) == 0 {
			r.cols, r.meta = sf.cols, sf.meta
		} else if !slices.EqualFunc(sf.cols, r.cols, sameColumn) {
			first := r.files[0].path
			sf.close()
			r.Close()
			return nil, fmt.Errorf("%s: columns %s differ from %s in %s; read them separately", p, columnList(sf.cols), columnList(r.cols), first)
		} else if !opt.AllowMixed {
			first := r.files[0]
			if err := runid.Check(first.path, first.meta, p, sf.meta, runid.ReaderKeys,
				"read them separately, or pass --allow-mixed to read them together on purpose"); err != nil {
				sf.close()
				r.Close()
				return nil, err
			}
		}
		r.files = append(r.files, sf)
		r.rows += sf.rows
	}
	if len(r.files) > 1 && ranks[len(ranks)-1] > 0 {
		if err := checkDisjoint(r.files); err != nil {
			r.Close()
			return nil, err
		}
	}
	return r, nil
}

// checkDisjoint refuses files of one source that hold the same item twice:
// a file and its copy, parts of two shardings, or two runs over the same
// folder would otherwise be read as more data (and test rows could leak
// into training). Files are of one source when their "source.path" (or,
// failing that, "source.digest", then "source") metadata are equal; files
// of different sources may share ids. Ids are compared by a 64-bit hash,
// so the check holds 12 bytes per row whatever the ids' length.
func checkDisjoint(files []*storeFile) error {
	groups := map[string][]*storeFile{}
	for _, sf := range files {
		key := "source " + sf.meta["source"]
		if p, ok := sf.meta["source.path"]; ok {
			key = "path " + p
		} else if d, ok := sf.meta["source.digest"]; ok {
			key = "digest " + d
		}
		groups[key] = append(groups[key], sf)
	}
	for _, g := range groups {
		if len(g) < 2 {
			continue
		}
		owner := map[uint64]int32{} // id hash → 1 + the position in g of its file
		for k, sf := range g {
			c, err := newCursor(sf, 0, nil, 8192)
			if err != nil {
				return err
			}
			c.row = -1
			for {
				ok, err := c.next()
				if err != nil {
					c.release()
					return err
				}
				if !ok {
					break
				}
				h := maphash.String(idSeed, c.curID())
				if prev, dup := owner[h]; dup && int(prev) != k+1 {
					id := strings.Clone(c.curID())
					c.release()
					return fmt.Errorf("%s and %s both hold %q of %s: a copy, or parts of two runs; remove one",
						g[prev-1].path, sf.path, id, sourceName(sf))
				}
				owner[h] = int32(k + 1)
			}
			c.release()
		}
	}
	return nil
}

var idSeed = maphash.MakeSeed()

func sourceName(sf *storeFile) string {
	if s := sf.meta["source"]; s != "" {
		return strconv.Quote(s)
	}
	return "the same source"
}

func sameColumn(a, b Column) bool { return a.Name == b.Name && a.Dim == b.Dim }

func globEscape(s string) string {
	return strings.NewReplacer(`*`, `\*`, `?`, `\?`, `[`, `\[`, `\`, `\\`).Replace(s)
}

// partRanks gives every path rank 0 (merge by index) when the paths are
// exactly parts 1…N of one run, else ranks in name order (concatenate).
func partRanks(paths []string) ([]int, error) {
	ranks := make([]int, len(paths))
	// Parts of one output with different shard counts are stale leftovers
	// of an earlier sharding: name one file of each.
	firstOfN := map[string]map[int]string{}
	for _, p := range paths {
		if m := partName.FindStringSubmatch(filepath.Base(p)); m != nil {
			nn, _ := strconv.Atoi(m[3])
			b := m[1] + m[4]
			if firstOfN[b] == nil {
				firstOfN[b] = map[int]string{}
			}
			if _, ok := firstOfN[b][nn]; !ok {
				firstOfN[b][nn] = p
			}
		}
	}
	for _, byN := range firstOfN {
		if len(byN) > 1 {
			ns := make([]int, 0, len(byN))
			for nn := range byN {
				ns = append(ns, nn)
			}
			slices.Sort(ns)
			return nil, fmt.Errorf("parts of %d shardings: %s (%d shards) and %s (%d shards); remove the stale ones",
				len(ns), filepath.Base(byN[ns[0]]), ns[0], filepath.Base(byN[ns[1]]), ns[1])
		}
	}
	base, n := "", -1
	seen := map[int]bool{}
	for _, p := range paths {
		m := partName.FindStringSubmatch(filepath.Base(p))
		if m == nil {
			n = -1
			break
		}
		k, _ := strconv.Atoi(m[2])
		nn, _ := strconv.Atoi(m[3])
		b := m[1] + m[4]
		if (n >= 0 && (nn != n || b != base)) || k < 1 || k > nn || seen[k] {
			n = -1
			break
		}
		base, n, seen[k] = b, nn, true
	}
	if n > 0 {
		if len(seen) != n {
			for k := 1; k <= n; k++ {
				if !seen[k] {
					return nil, fmt.Errorf("part %d of %d is missing", k, n)
				}
			}
		}
		return ranks, nil
	}
	for i := range ranks {
		ranks[i] = i
	}
	return ranks, nil
}

// Close releases the files.
func (r *Reader) Close() error {
	var first error
	for _, sf := range r.files {
		if err := sf.close(); err != nil && first == nil {
			first = err
		}
	}
	r.files = nil
	return first
}

// Columns returns the vector columns, in file order.
func (r *Reader) Columns() []Column { return slices.Clone(r.cols) }

// Metadata returns the caller's key-value metadata of the first file, with
// the store's own keys (MetaColumns, MetaFormat, MetaChecksums).
func (r *Reader) Metadata() map[string]string {
	m := make(map[string]string, len(r.meta))
	for k, v := range r.meta {
		m[k] = v
	}
	return m
}

// NumRows returns the number of rows over all files.
func (r *Reader) NumRows() int { return r.rows }

// Files returns the paths being read.
func (r *Reader) Files() []string {
	p := make([]string, len(r.files))
	for i, sf := range r.files {
		p[i] = sf.path
	}
	return p
}

// Table holds rows of a store in memory. Vectors[j] is row-major
// [Len(), Columns[j].Dim]. LabelNames and Splits are "" where null; Labels
// is 0 where HasLabel is false.
type Table struct {
	Index      []int64
	IDs        []string
	Labels     []int64
	HasLabel   []bool
	LabelNames []string
	Splits     []string
	Columns    []Column
	Vectors    [][]float32
}

// Len returns the number of rows.
func (t *Table) Len() int { return len(t.IDs) }

// Vector returns the row-major values of the named column and its width.
func (t *Table) Vector(name string) (data []float32, dim int, err error) {
	for j, c := range t.Columns {
		if c.Name == name {
			return t.Vectors[j], c.Dim, nil
		}
	}
	return nil, 0, fmt.Errorf("table has no column %q", name)
}

// Dense returns the named column as a float64 matrix [Len(), dim].
func (t *Table) Dense(name string) (*mat.Dense, error) {
	v, d, err := t.Vector(name)
	if err != nil {
		return nil, err
	}
	if t.Len() == 0 {
		return nil, fmt.Errorf("column %q: table is empty", name)
	}
	data := make([]float64, len(v))
	for i, x := range v {
		data[i] = float64(x)
	}
	return mat.NewDense(t.Len(), d, data), nil
}

func (t *Table) appendRow(r *Row) {
	t.Index = append(t.Index, int64(r.Index))
	t.IDs = append(t.IDs, strings.Clone(r.ID))
	t.Labels = append(t.Labels, r.Label)
	t.HasLabel = append(t.HasLabel, r.HasLabel)
	t.LabelNames = append(t.LabelNames, strings.Clone(r.LabelName))
	t.Splits = append(t.Splits, strings.Clone(r.Split))
	for j, v := range r.Vectors {
		t.Vectors[j] = append(t.Vectors[j], v...)
	}
}

func (r *Reader) selection(columns []string) ([]int, []Column, error) {
	if len(columns) == 0 {
		sel := make([]int, len(r.cols))
		for i := range sel {
			sel[i] = i
		}
		return sel, slices.Clone(r.cols), nil
	}
	var sel []int
	var cols []Column
	for _, name := range columns {
		j := slices.IndexFunc(r.cols, func(c Column) bool { return c.Name == name })
		if j < 0 {
			names := make([]string, len(r.cols))
			for i, c := range r.cols {
				names[i] = c.Name
			}
			return nil, nil, fmt.Errorf("%s: no column %q (have %s)", r.files[0].path, name, strings.Join(names, ", "))
		}
		sel = append(sel, j)
		cols = append(cols, r.cols[j])
	}
	return sel, cols, nil
}

func newTable(cols []Column, capRows int) *Table {
	t := &Table{
		Index:      make([]int64, 0, capRows),
		IDs:        make([]string, 0, capRows),
		Labels:     make([]int64, 0, capRows),
		HasLabel:   make([]bool, 0, capRows),
		LabelNames: make([]string, 0, capRows),
		Splits:     make([]string, 0, capRows),
		Columns:    cols,
		Vectors:    make([][]float32, len(cols)),
	}
	for j, c := range cols {
		t.Vectors[j] = make([]float32, 0, capRows*c.Dim)
	}
	return t
}

// Load reads every row with the named vector columns (all when none are
// named) into memory, in the order described at Open.
func (r *Reader) Load(columns ...string) (*Table, error) {
	var t *Table
	err := r.batches(r.rows, columns, func(b *Table) error { t = b; return nil })
	if err != nil {
		return nil, err
	}
	if t == nil {
		_, cols, _ := r.selection(columns)
		t = newTable(cols, 0)
	}
	return t, nil
}

// Batches streams the rows, with the named vector columns (all when
// columns is empty), to fn in tables of at most batchRows rows. fn owns each
// table. An error from fn stops the iteration and is returned.
func (r *Reader) Batches(batchRows int, columns []string, fn func(*Table) error) error {
	if batchRows < 1 {
		return fmt.Errorf("batch of %d rows: must be positive", batchRows)
	}
	return r.batches(batchRows, columns, fn)
}

func (r *Reader) batches(batchRows int, columns []string, fn func(*Table) error) error {
	if len(r.files) == 0 {
		return errors.New("reader is closed")
	}
	sel, cols, err := r.selection(columns)
	if err != nil {
		return err
	}
	rowWidth := 64
	for _, c := range cols {
		rowWidth += 4 * c.Dim
	}
	inputs := make([]mergeInput, len(r.files))
	for i, sf := range r.files {
		inputs[i] = mergeInput{sf: sf, first: -1, rank: r.ranks[i]}
	}
	m, err := newMerger(inputs, r.cols, sel, max(1, min(batchRows, (1<<20)/rowWidth)), false)
	if err != nil {
		return err
	}
	defer m.close()
	var row Row
	t := newTable(cols, min(batchRows, r.rows))
	for {
		c, err := m.next()
		if err != nil {
			return err
		}
		if c == nil {
			break
		}
		c.curRow(&row)
		t.appendRow(&row)
		if t.Len() == batchRows {
			if err := fn(t); err != nil {
				return err
			}
			t = newTable(cols, min(batchRows, r.rows))
		}
	}
	if t.Len() > 0 {
		return fn(t)
	}
	return nil
}

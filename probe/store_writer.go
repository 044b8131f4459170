package probe

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/perceiverkit/perceiver/internal/runid"
)

// DefaultRowGroupBytes is the row-group size used when WriterOptions leaves
// it zero: large enough for fast scans, small enough to bound memory.
const DefaultRowGroupBytes = 64 << 20

// WriterOptions configure Create.
type WriterOptions struct {
	// RowGroupBytes bounds the rows buffered in memory (estimated as their
	// float32 payload plus strings); each full buffer becomes one checkpoint
	// and one row group. Zero means DefaultRowGroupBytes.
	RowGroupBytes int64
	// Resume continues an interrupted run: rows already in finished
	// checkpoints, or in an existing output file, are kept and Done reports
	// them. Without Resume an existing output or checkpoint folder is an error.
	Resume bool
	// Metadata is stored as Parquet key-value metadata of the output. Keys
	// starting with "probe." or "ARROW:" are reserved.
	Metadata map[string]string
	// Identity names the Metadata keys that identify the run (the weights'
	// digest, the configuration, the source): they are stored in every
	// checkpoint too, and Resume refuses checkpoints or an output whose
	// values differ, naming the keys, so rows of two runs never mix.
	Identity []string
	// Notify receives notices, such as the takeover of a lock left by a
	// process that no longer runs. Nil prints them to standard error.
	Notify func(msg string)
}

// Writer streams rows into a Parquet file crash-safely. Rows are buffered
// up to RowGroupBytes, then written as a complete checkpoint file in
// PartialDir(path); Close merges the checkpoints, ordered by Row.Index, into
// path through a temporary name and a rename. The output path therefore
// never holds a partial file, and a killed process loses at most the rows
// still buffered. Write and Done are safe for concurrent use.
type Writer struct {
	mu       sync.Mutex
	path     string
	partial  string
	cols     []Column
	schema   *arrow.Schema
	opt      WriterOptions
	meta     map[string]string
	done     map[string]struct{}
	buf      []Row
	bufBytes int64
	chunks   []chunk // finished checkpoint files
	existing bool    // path already holds a complete file (resume)
	next     int     // number of the next checkpoint
	err      error   // sticky: a failed flush poisons the writer
	closed   bool
	lock     *writeLock
	fresh    bool // the checkpoint folder was created by this run
	expect   int  // rows the output must hold (Expect), 0: unchecked
}

// PartialDir is the hidden folder holding the checkpoints of an unfinished
// write to path.
func PartialDir(path string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".partial")
}

// A checkpoint is named chunk-<number>-<first index>-<writer token>.parquet;
// the index in the name lets the merge open it only when its rows are due,
// and the token (the lock's generation) keeps the names of two writers
// apart, even when one was taken over while paused. Names without a token
// were written before it existed.
var chunkName = regexp.MustCompile(`^chunk-(\d+)-(\d+)(-[0-9a-f]+)?\.parquet$`)

type chunk struct {
	path  string
	first int64
}

// Create starts writing the store at path with the given vector columns.
func Create(path string, cols []Column, opt WriterOptions) (*Writer, error) {
	if err := validateColumns(cols); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	meta, err := storeMetadata(cols, opt.Metadata)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if opt.RowGroupBytes <= 0 {
		opt.RowGroupBytes = DefaultRowGroupBytes
	}
	if opt.Notify == nil {
		opt.Notify = func(msg string) { fmt.Fprintln(os.Stderr, "probe:", msg) }
	}
	for _, k := range opt.Identity {
		if _, ok := meta[k]; !ok {
			return nil, fmt.Errorf("%s: identity key %q is not in the metadata", path, k)
		}
	}
	// One writer per output, taken before anything on disk is looked at.
	lock, err := acquireLock(path, opt.Notify)
	if err != nil {
		return nil, err
	}
	w, err := create(path, cols, opt, meta)
	if err != nil {
		lock.release()
		return nil, err
	}
	w.lock = lock
	return w, nil
}

func create(path string, cols []Column, opt WriterOptions, meta map[string]string) (*Writer, error) {
	w := &Writer{
		path:    path,
		partial: PartialDir(path),
		cols:    slices.Clone(cols),
		schema:  arrowSchema(cols),
		opt:     opt,
		meta:    meta,
		done:    map[string]struct{}{},
		next:    1,
	}
	_, err := os.Stat(path)
	switch {
	case err == nil && !opt.Resume:
		return nil, fmt.Errorf("%s already exists; remove it, or add --resume (WriterOptions.Resume) to continue it", path)
	case err == nil:
		w.existing = true
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	_, err = os.Stat(w.partial)
	switch {
	case err == nil && !opt.Resume:
		return nil, fmt.Errorf("%s: an unfinished run left %s; add --resume (WriterOptions.Resume) to continue it, or remove that folder", path, w.partial)
	case err == nil:
		if err := w.scanPartial(); err != nil {
			return nil, err
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	default:
		w.fresh = true
	}
	if w.existing {
		if err := w.collectIDs(path); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(w.partial, 0o755); err != nil {
		return nil, err
	}
	return w, nil
}

// scanPartial removes temporaries of an interrupted write and records the
// finished checkpoints and their ids.
func (w *Writer) scanPartial() error {
	ents, err := os.ReadDir(w.partial)
	if err != nil {
		return err
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			if err := os.Remove(filepath.Join(w.partial, name)); err != nil {
				return err
			}
			continue
		}
		m := chunkName.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		p := filepath.Join(w.partial, name)
		if err := w.collectIDs(p); err != nil {
			if strings.Contains(err.Error(), "damaged") || strings.Contains(err.Error(), "corrupt") {
				return fmt.Errorf("%w; remove %s and run again with --resume to recompute its rows", err, p)
			}
			return err
		}
		first, _ := strconv.ParseInt(m[2], 10, 64)
		w.chunks = append(w.chunks, chunk{p, first})
		n, _ := strconv.Atoi(m[1])
		w.next = max(w.next, n+1)
	}
	return nil
}

// collectIDs checks that a finished file matches the writer's columns and
// marks its ids done.
func (w *Writer) collectIDs(path string) error {
	sf, err := openStoreFile(path)
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	defer sf.close()
	if !slices.EqualFunc(sf.cols, w.cols, sameColumn) {
		return fmt.Errorf("resume: %s has columns %s, this run writes %s", path, columnList(sf.cols), columnList(w.cols))
	}
	if err := w.sameRun(sf); err != nil {
		return err
	}
	// Read every column, so that the checksums of the vectors are verified
	// now rather than at the merge after hours of work; small batches bound
	// the memory.
	sel := make([]int, len(sf.cols))
	rowWidth := 64
	for j, col := range sf.cols {
		sel[j] = j
		rowWidth += 4 * col.Dim
	}
	c, err := newCursor(sf, 0, sel, max(1, min(8192, (4<<20)/rowWidth)))
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	defer c.release()
	c.row = -1
	for {
		ok, err := c.next()
		if err != nil {
			return fmt.Errorf("resume: %w", err)
		}
		if !ok {
			return nil
		}
		w.done[strings.Clone(c.curID())] = struct{}{}
	}
}

// sameRun checks that a file was written by a run with this writer's
// identity (WriterOptions.Identity), naming the keys that differ.
func (w *Writer) sameRun(sf *storeFile) error {
	var diffs, keys []string
	for _, d := range runid.Compare(sf.meta, w.meta, w.opt.Identity) {
		if d.AbsentA {
			diffs = append(diffs, d.Key+" (absent there)")
		} else {
			diffs = append(diffs, fmt.Sprintf("%s (%s there, %s here)", d.Key, abbrev(d.A), abbrev(d.B)))
		}
		keys = append(keys, d.Key)
	}
	if len(diffs) == 0 {
		return nil
	}
	return &RunMismatchError{Path: sf.path, Keys: keys, details: diffs}
}

// RunMismatchError reports a resume onto a file written by another run:
// the Identity keys whose values differ.
type RunMismatchError struct {
	Path    string
	Keys    []string
	details []string
}

func (e *RunMismatchError) Error() string {
	verb := "differs"
	if len(e.details) > 1 {
		verb = "differ"
	}
	return fmt.Sprintf("resume: %s was written by another run: %s %s; use another output or remove it", e.Path, strings.Join(e.details, ", "), verb)
}

// abbrev shortens a metadata value (a digest, a JSON configuration) for a one-line message.
func abbrev(s string) string {
	if len(s) <= 40 {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:16]+"…") + fmt.Sprintf(" (%d bytes)", len(s))
}

func columnList(cols []Column) string {
	s := make([]string, len(cols))
	for i, c := range cols {
		s[i] = c.Name + "[" + strconv.Itoa(c.Dim) + "]"
	}
	return strings.Join(s, ",")
}

// Columns returns the writer's vector columns.
func (w *Writer) Columns() []Column { return slices.Clone(w.cols) }

// Path returns the output path.
func (w *Writer) Path() string { return w.path }

// Done reports whether a row with this id is already written (in this run
// or, when resuming, in an earlier one), so its computation can be skipped.
func (w *Writer) Done(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.done[id]
	return ok
}

// NumDone returns the number of rows written so far, including resumed ones.
func (w *Writer) NumDone() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.done)
}

// Write adds a row. The vectors are copied, so the caller may reuse them.
// A row whose id is already done is an error.
func (w *Writer) Write(r Row) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return fmt.Errorf("%s: write after close", w.path)
	}
	if w.err != nil {
		return w.err
	}
	if r.ID == "" {
		return fmt.Errorf("%s: row %d has an empty id", w.path, r.Index)
	}
	if r.Index < 0 {
		return fmt.Errorf("%s: row %q has negative index %d", w.path, r.ID, r.Index)
	}
	if _, dup := w.done[r.ID]; dup {
		return fmt.Errorf("%s: row %q is already written", w.path, r.ID)
	}
	if len(r.Vectors) != len(w.cols) {
		return fmt.Errorf("%s: row %q has %d vectors, want %d (%s)", w.path, r.ID, len(r.Vectors), len(w.cols), columnList(w.cols))
	}
	total := 0
	for j, v := range r.Vectors {
		if len(v) != w.cols[j].Dim {
			return fmt.Errorf("%s: row %q column %s has %d values, want %d", w.path, r.ID, w.cols[j].Name, len(v), w.cols[j].Dim)
		}
		total += len(v)
	}
	// One allocation holds all the row's vectors.
	flat := make([]float32, 0, total)
	vecs := make([][]float32, len(r.Vectors))
	for j, v := range r.Vectors {
		start := len(flat)
		flat = append(flat, v...)
		vecs[j] = flat[start:len(flat):len(flat)]
	}
	r.Vectors = vecs
	w.buf = append(w.buf, r)
	w.bufBytes += rowBytes(&r)
	w.done[r.ID] = struct{}{}
	if w.bufBytes >= w.opt.RowGroupBytes {
		if err := w.flush(); err != nil {
			w.err = err
			return err
		}
	}
	return nil
}

// flush writes the buffered rows, sorted by index, as the next checkpoint.
func (w *Writer) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	slices.SortFunc(w.buf, func(a, b Row) int { return a.Index - b.Index })
	for i := 1; i < len(w.buf); i++ {
		if w.buf[i].Index == w.buf[i-1].Index {
			return fmt.Errorf("%s: rows %q and %q share index %d", w.path, w.buf[i-1].ID, w.buf[i].ID, w.buf[i].Index)
		}
	}
	if err := w.lock.check(w.path); err != nil {
		return err
	}
	first := w.buf[0].Index
	token := "0"
	if w.lock != nil {
		token = w.lock.token
	}
	name := filepath.Join(w.partial, fmt.Sprintf("chunk-%06d-%d-%s.parquet", w.next, first, token))
	// Checkpoints carry the run's metadata, identity included, so a resume can check them.
	sink, err := newParquetSink(name, name+".tmp", w.schema, w.meta)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	rb := newRecordBuilder(w.schema)
	defer rb.release()
	rb.reserve(len(w.buf))
	for i := range w.buf {
		rb.appendRow(&w.buf[i])
	}
	rec := rb.newRecord()
	err = sink.write(rec)
	rec.Release()
	if err != nil {
		sink.abort()
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := sink.commit(); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	w.chunks = append(w.chunks, chunk{name, int64(first)})
	w.next++
	clear(w.buf)
	w.buf, w.bufBytes = w.buf[:0], 0
	return nil
}

// Expect sets the number of rows the finished output must hold (the source's items less those
// that could not be read); Close fails, keeping the checkpoints, when the rows differ.
func (w *Writer) Expect(rows int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.expect = rows
}

// Abort checkpoints the buffered rows and stops, leaving the checkpoints for
// a later run with Resume (the path for an interrupt such as Ctrl-C).
func (w *Writer) Abort() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	defer w.lock.release()
	if w.err != nil {
		return w.err
	}
	return w.flush()
}

// Discard stops without writing: the buffered rows are dropped, and the
// checkpoint folder is removed when this run created it (checkpoints of an
// earlier run are kept). For a run that produced nothing worth keeping.
func (w *Writer) Discard() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	defer w.lock.release()
	clear(w.buf)
	w.buf = nil
	if w.fresh && len(w.chunks) == 0 {
		return os.RemoveAll(w.partial)
	}
	return nil
}

// Close checkpoints the buffered rows, merges all rows ordered by index into
// the output path, and removes the checkpoint folder. On error the
// checkpoints are kept so that a run with Resume can finish the file.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	defer w.lock.release()
	if w.err != nil {
		return w.err
	}
	if err := w.flush(); err != nil {
		return err
	}
	if len(w.chunks) > 0 || !w.existing {
		if err := w.merge(); err != nil {
			return err
		}
	}
	return os.RemoveAll(w.partial)
}

func (w *Writer) merge() error {
	inputs := make([]mergeInput, 0, len(w.chunks)+1)
	for _, c := range w.chunks {
		inputs = append(inputs, mergeInput{path: c.path, first: c.first})
	}
	if w.existing {
		sf, err := openStoreFile(w.path)
		if err != nil {
			return err
		}
		defer sf.close()
		inputs = append(inputs, mergeInput{sf: sf, first: -1})
	}
	if err := w.lock.check(w.path); err != nil {
		return err
	}
	sel := make([]int, len(w.cols))
	rowWidth := int64(64)
	for j, c := range w.cols {
		sel[j] = j
		rowWidth += 4 * int64(c.Dim)
	}
	// Read in slices of about 1/8 row group so the open checkpoints, the
	// row group being built and the writer's pages stay near 2 row groups.
	batch := int(max(1, min(math.MaxInt32, w.opt.RowGroupBytes/8/rowWidth)))
	m, err := newMerger(inputs, w.cols, sel, batch, true)
	if err != nil {
		return err
	}
	defer m.close()
	sink, err := newParquetSink(w.path, filepath.Join(w.partial, "merged.parquet.tmp"), w.schema, w.meta)
	if err != nil {
		return err
	}
	rb := newRecordBuilder(w.schema)
	defer rb.release()
	writeGroup := func() error {
		rec := rb.newRecord()
		defer rec.Release()
		return sink.write(rec)
	}
	var row Row
	merged := 0
	for {
		c, err := m.next()
		if err != nil {
			sink.abort()
			return err
		}
		if c == nil {
			break
		}
		c.curRow(&row)
		rb.appendRow(&row)
		merged++
		if rb.bytes >= w.opt.RowGroupBytes {
			if err := writeGroup(); err != nil {
				sink.abort()
				return err
			}
		}
	}
	if rb.rows > 0 {
		if err := writeGroup(); err != nil {
			sink.abort()
			return err
		}
	}
	// Every row this run and the resumed ones recorded must be in the output: a checkpoint lost or
	// replaced (two writers, a hand) would otherwise give a short file reported as success.
	want := len(w.done)
	if w.expect > 0 && w.expect != want {
		sink.abort()
		return fmt.Errorf("%s: %d rows recorded, but the source has %d to write: %d missing; run again with --resume to compute them", w.path, want, w.expect, w.expect-want)
	}
	if merged != want {
		sink.abort()
		return fmt.Errorf("%s: the checkpoints in %s hold %d rows of the %d written: %d missing (a checkpoint was replaced or removed); nothing written, run again with --resume to recompute them", w.path, w.partial, merged, want, want-merged)
	}
	if err := w.lock.check(w.path); err != nil {
		sink.abort()
		return err
	}
	return sink.commit()
}

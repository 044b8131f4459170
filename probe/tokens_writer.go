package probe

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/perceiverkit/perceiver/internal/outfile"
)

// TokenWriterOptions configure CreateTokens.
type TokenWriterOptions struct {
	// Resume keeps the rows of an interrupted run (or of a finished store) and Done reports
	// them. Without it an existing store or unfinished run is an error.
	Resume bool
	// Notify receives notices (a lock taken over). Nil prints them to standard error.
	Notify func(msg string)
}

// TokenWriter appends images' tokens to a store crash-safely. Rows go to an append-only journal
// in the hidden folder .NAME.partial (data.bin, then one line "index<TAB>crc<TAB>label<TAB>id" per
// row in rows.log, written after its data); Close writes NAME.bin in index order and then
// NAME.json, each through a temporary name and a rename, and removes the folder. A killed run
// loses at most the rows not yet flushed; a resume truncates a torn tail, checks each kept row's
// CRC-32C, and refuses a journal of another run (Identity). Write and Done are safe for
// concurrent use.
type TokenWriter struct {
	mu       sync.Mutex
	meta     TokenMeta
	bin      string
	side     string
	partial  string
	data     *os.File
	log      *os.File
	dataBuf  *bufio.Writer
	logBuf   *bufio.Writer
	rows     []journalRow
	done     map[string]bool
	scratch  []byte
	lock     *writeLock
	base     *TokenMeta // a finished store being completed (moved into partial/base.*)
	err      error
	closed   bool
	unsynced int
	dataRows int64 // rows in data.bin
}

type journalRow struct {
	index int64
	label int64
	id    string
	crc   uint32
	base  bool  // in base.bin (an earlier finished store), else data.bin
	off   int64 // row number in its file
}

// CreateTokens starts writing the token store DIR/NAME described by meta (Format, Shape[0],
// IDs, Indices, Labels and CRC32C are filled in by the writer). meta.Identity is compared on
// resume.
func CreateTokens(base string, meta TokenMeta, opt TokenWriterOptions) (*TokenWriter, error) {
	bin, side := TokenPaths(base)
	if meta.DType != TokensFloat16 && meta.DType != TokensFloat32 {
		return nil, fmt.Errorf("%s: dtype %q, want float16 or float32", bin, meta.DType)
	}
	if meta.Shape[1] != len(meta.Latents) || meta.Shape[1] < 1 || meta.Shape[2] < 1 {
		return nil, fmt.Errorf("%s: shape %v for %d latents", bin, meta.Shape, len(meta.Latents))
	}
	if opt.Notify == nil {
		opt.Notify = func(msg string) { fmt.Fprintln(os.Stderr, "probe:", msg) }
	}
	for _, p := range []string{bin, side} {
		if err := outfile.CheckTarget(p); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return nil, err
	}
	meta.Format = TokensFormat
	meta.Order = "C"
	lock, err := acquireLock(bin, opt.Notify)
	if err != nil {
		return nil, err
	}
	w := &TokenWriter{meta: meta, bin: bin, side: side, partial: PartialDir(bin), done: map[string]bool{}, lock: lock}
	if err := w.open(opt.Resume); err != nil {
		w.closeFiles()
		lock.release()
		return nil, err
	}
	return w, nil
}

func (w *TokenWriter) open(resume bool) error {
	_, errSide := os.Stat(w.side)
	_, errPart := os.Stat(w.partial)
	if !resume {
		if errSide == nil {
			return fmt.Errorf("%s already exists; remove it or resume", w.side)
		}
		if errPart == nil {
			return fmt.Errorf("%s: an unfinished run left %s; resume it or remove that folder", w.bin, w.partial)
		}
	}
	if err := os.MkdirAll(w.partial, 0o755); err != nil {
		return err
	}
	idPath := filepath.Join(w.partial, "identity.json")
	if raw, err := os.ReadFile(idPath); err == nil {
		var had map[string]string
		if err := json.Unmarshal(raw, &had); err != nil {
			return fmt.Errorf("%s: %w", idPath, err)
		}
		if err := compareIdentity(w.bin, had, w.meta.Identity); err != nil {
			return err
		}
	} else {
		raw, _ := json.Marshal(w.meta.Identity)
		if err := outfile.WriteFile(idPath, raw, 0o644); err != nil {
			return err
		}
	}
	// A finished store being completed moves into the journal folder first (sidecar, then
	// array), so that no moment has a new array beside an old sidecar.
	baseSide, baseBin := filepath.Join(w.partial, "base.json"), filepath.Join(w.partial, "base.bin")
	if errSide == nil {
		raw, err := os.ReadFile(w.side)
		if err != nil {
			return err
		}
		var m TokenMeta
		if err := json.Unmarshal(raw, &m); err != nil {
			return fmt.Errorf("%s: %w", w.side, err)
		}
		if err := compareIdentity(w.side, m.Identity, w.meta.Identity); err != nil {
			return err
		}
		if err := os.Rename(w.side, baseSide); err != nil {
			return err
		}
	}
	if _, err := os.Stat(baseSide); err == nil {
		if _, err := os.Stat(baseBin); errors.Is(err, fs.ErrNotExist) {
			if err := os.Rename(w.bin, baseBin); err != nil {
				return fmt.Errorf("%s: completing a finished store: %w", w.bin, err)
			}
		}
		if err := w.loadBase(baseSide, baseBin); err != nil {
			return err
		}
	}
	return w.openJournal()
}

func compareIdentity(path string, had, want map[string]string) error {
	var keys, diffs []string
	for k, v := range want {
		if had[k] != v {
			keys = append(keys, k)
			diffs = append(diffs, k+" "+abbrev(v)+" vs "+abbrev(had[k]))
		}
	}
	for k, v := range had {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
			diffs = append(diffs, k+" missing vs "+abbrev(v))
		}
	}
	if len(keys) == 0 {
		return nil
	}
	slices.Sort(keys)
	slices.Sort(diffs)
	return &RunMismatchError{Path: path, Keys: keys, details: diffs}
}

func (w *TokenWriter) loadBase(side, bin string) error {
	raw, err := os.ReadFile(side)
	if err != nil {
		return err
	}
	var m TokenMeta
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("%s: %w", side, err)
	}
	if m.DType != w.meta.DType || m.Shape[1] != w.meta.Shape[1] || m.Shape[2] != w.meta.Shape[2] {
		return fmt.Errorf("%s: shape %v %s, this run writes %v %s", w.bin, m.Shape, m.DType, w.meta.Shape, w.meta.DType)
	}
	st, err := os.Stat(bin)
	if err != nil {
		return err
	}
	if st.Size() != int64(m.Shape[0])*int64(m.RowBytes()) {
		return fmt.Errorf("%s: %d bytes for shape %v: damaged", bin, st.Size(), m.Shape)
	}
	w.base = &m
	for i := range m.IDs {
		lab := int64(-1)
		if m.Labels != nil {
			lab = m.Labels[i]
		}
		w.rows = append(w.rows, journalRow{index: m.Indices[i], label: lab, id: m.IDs[i], base: true, off: int64(i)})
		w.done[m.IDs[i]] = true
	}
	return nil
}

// openJournal reads the journal, drops a torn tail and checks every kept row's checksum.
func (w *TokenWriter) openJournal() error {
	dp, lp := filepath.Join(w.partial, "data.bin"), filepath.Join(w.partial, "rows.log")
	rb := int64(w.meta.RowBytes())
	data, err := os.OpenFile(dp, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	w.data = data
	logf, err := os.OpenFile(lp, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	w.log = logf
	raw, err := io.ReadAll(logf)
	if err != nil {
		return err
	}
	st, err := data.Stat()
	if err != nil {
		return err
	}
	have := st.Size() / rb
	var n int64
	good := 0
	buf := make([]byte, rb)
	for good < len(raw) {
		end := strings.IndexByte(string(raw[good:]), '\n')
		if end < 0 || n >= have {
			break // torn line, or its data never reached the disk
		}
		f := strings.SplitN(string(raw[good:good+end]), "\t", 4)
		if len(f) != 4 {
			return fmt.Errorf("%s: damaged line %d; remove %s and resume to recompute", lp, n+1, w.partial)
		}
		idx, e1 := strconv.ParseInt(f[0], 10, 64)
		crc, e2 := strconv.ParseUint(f[1], 16, 32)
		lab, e3 := strconv.ParseInt(f[2], 10, 64)
		if e1 != nil || e2 != nil || e3 != nil {
			return fmt.Errorf("%s: damaged line %d; remove %s and resume to recompute", lp, n+1, w.partial)
		}
		if _, err := data.ReadAt(buf, n*rb); err != nil {
			return fmt.Errorf("%s: %w", dp, err)
		}
		if crc32.Checksum(buf, castagnoli) != uint32(crc) {
			// A row whose data the system lost at a crash: keep those before it.
			break
		}
		w.rows = append(w.rows, journalRow{index: idx, label: lab, id: f[3], crc: uint32(crc), off: n})
		w.done[f[3]] = true
		n++
		good += end + 1
	}
	if err := data.Truncate(n * rb); err != nil {
		return err
	}
	if err := logf.Truncate(int64(good)); err != nil {
		return err
	}
	if _, err := data.Seek(n*rb, io.SeekStart); err != nil {
		return err
	}
	if _, err := logf.Seek(int64(good), io.SeekStart); err != nil {
		return err
	}
	w.dataRows = n
	w.dataBuf = bufio.NewWriterSize(data, 4<<20)
	w.logBuf = bufio.NewWriterSize(logf, 64<<10)
	return nil
}

// Done reports whether the image with this id is already stored.
func (w *TokenWriter) Done(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.done[id]
}

// Path is the array file, DIR/NAME.bin.
func (w *TokenWriter) Path() string { return w.bin }

// Channels is a token's width; DType the stored value type.
func (w *TokenWriter) Channels() int { return w.meta.Shape[2] }
func (w *TokenWriter) DType() string { return w.meta.DType }

// Rows reports how many images are stored so far.
func (w *TokenWriter) Rows() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.rows)
}

// Write appends one image's tokens [Shape[1], Shape[2]] (float32, converted to the dtype).
// label is -1 when unknown.
func (w *TokenWriter) Write(index int64, id string, label int64, tokens []float32) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return fmt.Errorf("%s: write after close", w.bin)
	}
	if n := w.meta.Shape[1] * w.meta.Shape[2]; len(tokens) != n {
		return fmt.Errorf("%s: row %q has %d values, want %d", w.bin, id, len(tokens), n)
	}
	if strings.ContainsAny(id, "\t\n") {
		return fmt.Errorf("%s: id %q holds a tab or newline", w.bin, id)
	}
	if w.done[id] {
		return fmt.Errorf("%s: id %q written twice", w.bin, id)
	}
	rb := w.meta.RowBytes()
	if cap(w.scratch) < rb {
		w.scratch = make([]byte, rb)
	}
	b := w.scratch[:rb]
	encodeTokens(b, tokens, w.meta.DType)
	crc := crc32.Checksum(b, castagnoli)
	if _, err := w.dataBuf.Write(b); err != nil {
		w.err = err
		return err
	}
	w.rows = append(w.rows, journalRow{index: index, label: label, id: id, crc: crc, off: w.dataRows})
	w.dataRows++
	w.done[id] = true
	fmt.Fprintf(w.logBuf, "%d\t%08x\t%d\t%s\n", index, crc, label, id)
	w.unsynced++
	if w.unsynced >= 256 {
		return w.flushLocked()
	}
	return nil
}

// Flush writes the buffered rows to the journal: data first, then their log lines.
func (w *TokenWriter) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flushLocked()
}

func (w *TokenWriter) flushLocked() error {
	if w.err != nil {
		return w.err
	}
	if err := w.dataBuf.Flush(); err != nil {
		w.err = err
		return err
	}
	if err := w.data.Sync(); err != nil {
		w.err = err
		return err
	}
	if err := w.logBuf.Flush(); err != nil {
		w.err = err
		return err
	}
	w.unsynced = 0
	return nil
}

// Abort flushes what was written and leaves the journal for a resume.
func (w *TokenWriter) Abort() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	err := w.flushLocked()
	w.closeFiles()
	if e := w.lock.release(); err == nil {
		err = e
	}
	return err
}

// Discard removes the journal and leaves no store (nothing was worth keeping).
func (w *TokenWriter) Discard() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	w.closeFiles()
	err := os.RemoveAll(w.partial)
	if e := w.lock.release(); err == nil {
		err = e
	}
	return err
}

func (w *TokenWriter) closeFiles() {
	if w.data != nil {
		w.data.Close()
	}
	if w.log != nil {
		w.log.Close()
	}
}

// Close writes NAME.bin (rows in index order) and NAME.json, and removes the journal.
func (w *TokenWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	err := w.finish()
	w.closeFiles()
	if err == nil {
		err = os.RemoveAll(w.partial)
	}
	if e := w.lock.release(); err == nil {
		err = e
	}
	return err
}

func (w *TokenWriter) finish() error {
	if err := w.flushLocked(); err != nil {
		return err
	}
	rows := slices.Clone(w.rows)
	slices.SortStableFunc(rows, func(a, b journalRow) int {
		switch {
		case a.index < b.index:
			return -1
		case a.index > b.index:
			return 1
		}
		return strings.Compare(a.id, b.id)
	})
	var baseF *os.File
	if w.base != nil {
		f, err := os.Open(filepath.Join(w.partial, "base.bin"))
		if err != nil {
			return err
		}
		defer f.Close()
		baseF = f
	}
	tmp, err := os.CreateTemp(filepath.Dir(w.bin), "."+filepath.Base(w.bin)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if tmp != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	rb := int64(w.meta.RowBytes())
	buf := make([]byte, rb)
	out := bufio.NewWriterSize(tmp, 4<<20)
	crc := uint32(0)
	m := w.meta
	m.IDs, m.Indices, m.Labels = make([]string, len(rows)), make([]int64, len(rows)), make([]int64, len(rows))
	for i, r := range rows {
		src := w.data
		if r.base {
			src = baseF
		}
		if _, err := src.ReadAt(buf, r.off*rb); err != nil {
			return fmt.Errorf("%s: row %q: %w", w.partial, r.id, err)
		}
		if !r.base && crc32.Checksum(buf, castagnoli) != r.crc {
			return fmt.Errorf("%s: row %q changed on disk since it was written; remove %s and resume to recompute", w.bin, r.id, w.partial)
		}
		crc = crc32.Update(crc, castagnoli, buf)
		if _, err := out.Write(buf); err != nil {
			return err
		}
		m.IDs[i], m.Indices[i], m.Labels[i] = r.id, r.index, r.label
	}
	if w.base != nil {
		// The earlier store's rows are checked against its own checksum by reading it whole.
		if err := checkFileCRC(filepath.Join(w.partial, "base.bin"), w.base.CRC32C); err != nil {
			return err
		}
	}
	if err := out.Flush(); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	m.Shape[0] = len(rows)
	m.CRC32C = fmt.Sprintf("%08x", crc)
	if err := outfile.CheckTarget(w.bin); err != nil {
		return err
	}
	// The sidecar goes last: a reader never pairs it with another array.
	os.Remove(w.side)
	if err := os.Rename(tmp.Name(), w.bin); err != nil {
		return err
	}
	tmp = nil
	raw, err := json.Marshal(&m)
	if err != nil {
		return err
	}
	return writeFileAtomic(w.side, append(raw, '\n'))
}

func checkFileCRC(path, want string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := crc32.New(castagnoli)
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if got := fmt.Sprintf("%08x", h.Sum32()); got != want {
		return fmt.Errorf("%s: checksum %s, its sidecar says %s: the earlier store is damaged", path, got, want)
	}
	return nil
}

// writeFileAtomic writes data to a temporary name beside path and renames it over path.
func writeFileAtomic(path string, data []byte) error {
	if err := outfile.CheckTarget(path); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

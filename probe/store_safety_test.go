package probe

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var safetyMeta = map[string]string{"model": "tiny", "created": "2026-11-26T00:00:00Z"}

// workerOrder is the order in which parallel workers might finish items:
// roughly increasing, locally shuffled.
func workerOrder(n int) []int {
	order := seq(n)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i+8 <= n; i += 8 {
		rng.Shuffle(8, func(a, b int) { order[i+a], order[i+b] = order[i+b], order[i+a] })
	}
	return order
}

const (
	safetyRows  = 200
	safetyGroup = 40 << 10 // ~10 rows of ~4 KiB per checkpoint
)

func readBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// reference writes the uninterrupted run.
func reference(t *testing.T) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ref.parquet")
	writeRows(t, path, testCols, workerOrder(safetyRows), WriterOptions{RowGroupBytes: safetyGroup, Metadata: safetyMeta})
	return readBytes(t, path)
}

// resumeRun finishes path by writing every row not yet done.
func resumeRun(t *testing.T, path string) (skipped int) {
	t.Helper()
	w, err := Create(path, testCols, WriterOptions{RowGroupBytes: safetyGroup, Resume: true, Metadata: safetyMeta})
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range workerOrder(safetyRows) {
		r := testRow(i, testCols)
		if w.Done(r.ID) {
			skipped++
			continue
		}
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return skipped
}

func TestNoOverwrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "emb.parquet")
	writeFile(t, path, "precious")
	if _, err := Create(path, testCols, WriterOptions{}); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("overwrite: %v", err)
	}
	if got := string(readBytes(t, path)); got != "precious" {
		t.Fatalf("existing file changed to %q", got)
	}
	// Resuming onto a file that is not a store is refused too.
	if _, err := Create(path, testCols, WriterOptions{Resume: true}); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("resume onto a foreign file: %v", err)
	}

	p2 := filepath.Join(dir, "b.parquet")
	w, err := Create(p2, testCols, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(testRow(0, testCols))
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p2); !os.IsNotExist(err) {
		t.Fatalf("Abort created the output: %v", err)
	}
	if _, err := Create(p2, testCols, WriterOptions{}); err == nil || !strings.Contains(err.Error(), "resume") {
		t.Fatalf("unfinished run not reported: %v", err)
	}
	if _, err := Create(p2, testCols[:1], WriterOptions{Resume: true}); err == nil || !strings.Contains(err.Error(), "columns") {
		t.Fatalf("resume with other columns: %v", err)
	}
}

func TestWriteErrors(t *testing.T) {
	w, err := Create(filepath.Join(t.TempDir(), "e.parquet"), testCols, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	good := testRow(1, testCols)
	bad := []Row{
		{Index: 2, ID: "", Vectors: good.Vectors},
		{Index: -1, ID: "x", Vectors: good.Vectors},
		{Index: 2, ID: "x", Vectors: good.Vectors[:2]},
		{Index: 2, ID: "x", Vectors: [][]float32{good.Vectors[0], good.Vectors[1][:5], good.Vectors[2]}},
	}
	for i, r := range bad {
		if err := w.Write(r); err == nil {
			t.Errorf("bad row %d accepted", i)
		}
	}
	if err := w.Write(good); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(good); err == nil || !strings.Contains(err.Error(), "already") {
		t.Errorf("duplicate id: %v", err)
	}
	for _, c := range [][]Column{nil, {{Name: "id", Dim: 2}}, {{Name: "a", Dim: 0}}, {{Name: "a", Dim: 1}, {Name: "a", Dim: 2}}, {{Name: "a.b", Dim: 1}}} {
		if _, err := Create(filepath.Join(t.TempDir(), "c.parquet"), c, WriterOptions{}); err == nil {
			t.Errorf("columns %v accepted", c)
		}
	}
}

func TestAbortResumeMatchesUninterrupted(t *testing.T) {
	want := reference(t)
	path := filepath.Join(t.TempDir(), "emb.parquet")
	w, err := Create(path, testCols, WriterOptions{RowGroupBytes: safetyGroup, Metadata: safetyMeta})
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range workerOrder(safetyRows)[:123] {
		if err := w.Write(testRow(i, testCols)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if n := resumeRun(t, path); n != 123 {
		t.Errorf("resume skipped %d rows, want the 123 written before Abort", n)
	}
	if !bytes.Equal(readBytes(t, path), want) {
		t.Fatal("resumed file differs from the uninterrupted one")
	}
	if _, err := os.Stat(PartialDir(path)); !os.IsNotExist(err) {
		t.Fatalf("checkpoints left: %v", err)
	}
}

// TestResumeAfterCrashDuringCleanup covers a crash after the merged file was
// renamed into place but before the checkpoints were removed: resuming must
// not duplicate rows.
func TestResumeAfterCrashDuringCleanup(t *testing.T) {
	want := reference(t)
	path := filepath.Join(t.TempDir(), "emb.parquet")
	w, _ := Create(path, testCols, WriterOptions{RowGroupBytes: safetyGroup, Metadata: safetyMeta})
	for _, i := range workerOrder(safetyRows) {
		w.Write(testRow(i, testCols))
	}
	w.Abort()
	saved := t.TempDir()
	copyDir(t, PartialDir(path), saved)
	if n := resumeRun(t, path); n != safetyRows {
		t.Fatalf("skipped %d", n)
	}
	copyDir(t, saved, PartialDir(path))
	writeFile(t, filepath.Join(PartialDir(path), "merged.parquet.tmp"), "half a file")
	if n := resumeRun(t, path); n != safetyRows {
		t.Fatalf("second resume skipped %d", n)
	}
	if !bytes.Equal(readBytes(t, path), want) {
		t.Fatal("file differs after resuming a finished run with stale checkpoints")
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	os.MkdirAll(to, 0o755)
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		os.WriteFile(filepath.Join(to, e.Name()), readBytes(t, filepath.Join(from, e.Name())), 0o644)
	}
}

// TestKilledRunResumes kills a writing process with SIGKILL (no chance to
// flush) and checks that resuming yields the uninterrupted file, byte for
// byte.
func TestKilledRunResumes(t *testing.T) {
	if os.Getenv("PROBE_KILL_HELPER") != "" {
		return
	}
	want := reference(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "emb.parquet")
	ready := filepath.Join(dir, "ready")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillHelper$")
	cmd.Env = append(os.Environ(), "PROBE_KILL_HELPER="+path, "PROBE_KILL_READY="+ready)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("helper never got ready: %s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("killed run left an output file: %v", err)
	}
	chunks, _ := filepath.Glob(filepath.Join(PartialDir(path), "chunk-*.parquet"))
	if len(chunks) < 3 {
		t.Fatalf("%d checkpoints before the kill, want several", len(chunks))
	}
	skipped := resumeRun(t, path)
	// The helper wrote 150 rows; those in its unflushed buffer are lost.
	if skipped < 100 || skipped > 150 {
		t.Errorf("resume skipped %d rows, want the checkpointed part of 150", skipped)
	}
	if !bytes.Equal(readBytes(t, path), want) {
		t.Fatal("resumed file differs from the uninterrupted one")
	}
}

// TestKillHelper is the process killed by TestKilledRunResumes.
func TestKillHelper(t *testing.T) {
	path := os.Getenv("PROBE_KILL_HELPER")
	if path == "" {
		t.Skip("helper process for TestKilledRunResumes")
	}
	w, err := Create(path, testCols, WriterOptions{RowGroupBytes: safetyGroup, Metadata: safetyMeta})
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range workerOrder(safetyRows)[:150] {
		if err := w.Write(testRow(i, testCols)); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(os.Getenv("PROBE_KILL_READY"), nil, 0o644)
	time.Sleep(time.Hour)
}

func TestShardUnionEqualsFullRun(t *testing.T) {
	const n, parts = 101, 4
	dir := t.TempDir()
	full := filepath.Join(dir, "full", "emb.parquet")
	os.Mkdir(filepath.Dir(full), 0o755)
	writeRows(t, full, testCols, workerOrder(n), WriterOptions{RowGroupBytes: safetyGroup})
	sharded := filepath.Join(dir, "parts", "emb.parquet")
	os.Mkdir(filepath.Dir(sharded), 0o755)
	total := 0
	for k := 1; k <= parts; k++ {
		s := Shard{k, parts}
		var mine []int
		for _, i := range workerOrder(n) {
			if s.Contains(i) {
				mine = append(mine, i)
			}
		}
		total += len(mine)
		writeRows(t, PartPath(sharded, s), testCols, mine, WriterOptions{RowGroupBytes: safetyGroup})
	}
	if total != n {
		t.Fatalf("shards hold %d items, want %d", total, n)
	}
	for _, open := range []string{filepath.Dir(sharded), sharded} {
		r, err := Open(open)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Files()) != parts || r.NumRows() != n {
			t.Fatalf("Open(%s): %d files, %d rows", open, len(r.Files()), r.NumRows())
		}
		tab, err := r.Load()
		if err != nil {
			t.Fatal(err)
		}
		checkTable(t, tab, testCols, seq(n))
		r.Close()
	}
	fr, _ := Open(full)
	ft, _ := fr.Load()
	checkTable(t, ft, testCols, seq(n))
	fr.Close()

	os.Remove(PartPath(sharded, Shard{3, parts}))
	if _, err := Open(filepath.Dir(sharded)); err == nil || !strings.Contains(err.Error(), "part 3 of 4") {
		t.Fatalf("missing part: %v", err)
	}
}

// peakLive runs fn while sampling the live Go heap (arrow/go allocates from
// it) and returns the peak above the starting level. Each sample collects
// first: the bound is on live memory, not on garbage awaiting the next cycle
// (that part scales with GOGC).
func peakLive(fn func() error) (uint64, error) {
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			runtime.GC()
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
		}
	}()
	err := fn()
	close(stop)
	wg.Wait()
	return max(peak.Load(), base.HeapAlloc) - base.HeapAlloc, err
}

// memoryRun writes rows of 8 KiB in reverse index order with 1 MiB row
// groups, then streams them back, and returns the two peaks.
func memoryRun(t *testing.T, rows int) (write, read uint64) {
	cols := []Column{{Name: "a", Dim: 1024}, {Name: "b", Dim: 1024}}
	path := filepath.Join(t.TempDir(), "big.parquet")
	write, err := peakLive(func() error {
		w, err := Create(path, cols, WriterOptions{RowGroupBytes: 1 << 20})
		if err != nil {
			return err
		}
		vec := [][]float32{make([]float32, 1024), make([]float32, 1024)}
		for i := 0; i < rows; i++ {
			vec[0][i%1024], vec[1][0] = float32(i), float32(-i)
			if err := w.Write(Row{Index: rows - 1 - i, ID: strconv.Itoa(i), Vectors: vec}); err != nil {
				return err
			}
		}
		return w.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	read, err = peakLive(func() error {
		r, err := Open(path)
		if err != nil {
			return err
		}
		defer r.Close()
		return r.Batches(256, nil, func(tb *Table) error {
			for k := range tb.IDs {
				i := rows - 1 - int(tb.Index[k])
				if tb.IDs[k] != strconv.Itoa(i) || tb.Vectors[1][k*1024] != float32(-i) {
					return fmt.Errorf("row %d: id %s", seen+k, tb.IDs[k])
				}
			}
			seen += tb.Len()
			return nil
		})
	})
	if err != nil || seen != rows {
		t.Fatalf("read %d rows of %d: %v", seen, rows, err)
	}
	return write, read
}

// TestMemoryBounded checks that memory does not grow with the data: writing,
// merging and reading 96 MiB take about as much live heap as 16 MiB (data
// held in memory would need 80 MiB more), and well under the data size. At
// batch boundaries the live heap is flat (~6 MiB while reading); the sampled
// peak catches transient decoder buffers and rises ~10 MiB on longer runs.
// arrow/go's Parquet encoder and decoder hold several buffers per column
// chunk and the sampled peak is noisy, hence the margins.
func TestMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 112 MiB")
	}
	const mib = 1 << 20
	wSmall, rSmall := memoryRun(t, 2048)
	wBig, rBig := memoryRun(t, 12288)
	t.Logf("live heap peak, 1 MiB groups: write+merge %.1f MiB (16 MiB data) %.1f MiB (96 MiB), read %.1f / %.1f MiB",
		float64(wSmall)/mib, float64(wBig)/mib, float64(rSmall)/mib, float64(rBig)/mib)
	if wBig > wSmall+24*mib || rBig > rSmall+24*mib {
		t.Errorf("memory grows with the data: 6x the rows took %d/%d MiB more to write/read", (int64(wBig)-int64(wSmall))/mib, (int64(rBig)-int64(rSmall))/mib)
	}
	if wBig > 56*mib || rBig > 56*mib {
		t.Errorf("peak above 56 MiB for 96 MiB of data in 1 MiB row groups")
	}
}

// TestBadFiles checks that damaged or foreign files give an error naming
// the file, never a panic or silently short data.
func TestBadFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.parquet")
	writeRows(t, good, testCols, seq(40), WriterOptions{RowGroupBytes: safetyGroup})
	data := readBytes(t, good)
	cases := map[string][]byte{
		"truncated.parquet": data[:len(data)-100],
		"headless.parquet":  append([]byte("PAR1"), data[len(data)/2:]...),
		"text.parquet":      []byte("id,label\n1,2\n"),
		"empty.parquet":     nil,
	}
	for name, b := range cases {
		p := filepath.Join(dir, "bad", name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, b, 0o644)
		r, err := Open(p)
		if err == nil {
			_, err = r.Load()
			r.Close()
		}
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %v should name the file", name, err)
		}
	}
	// A plain Parquet file without the store's metadata is refused by name.
	plain := filepath.Join(dir, "plain.parquet")
	sink, err := newParquetSink(plain, plain+".tmp", arrowSchema(testCols), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(plain); err == nil || !strings.Contains(err.Error(), MetaColumns) {
		t.Errorf("foreign file: %v", err)
	}
	// A damaged checkpoint stops a resume with its name.
	path := filepath.Join(dir, "resume.parquet")
	w, _ := Create(path, testCols, WriterOptions{RowGroupBytes: safetyGroup})
	for i := 0; i < 30; i++ {
		w.Write(testRow(i, testCols))
	}
	w.Abort()
	chunks, _ := filepath.Glob(filepath.Join(PartialDir(path), "chunk-000001-*.parquet"))
	if len(chunks) != 1 {
		t.Fatalf("checkpoints %q", chunks)
	}
	chunk := chunks[0]
	c := readBytes(t, chunk)
	os.WriteFile(chunk, c[:len(c)/2], 0o644)
	if _, err := Create(path, testCols, WriterOptions{Resume: true}); err == nil || !strings.Contains(err.Error(), chunk) {
		t.Errorf("damaged checkpoint: %v", err)
	}
}

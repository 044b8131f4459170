package probe

// Tests for the defects of issue 19 on the data side (numbers as in the issue). Each failed
// before its fix.

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// 1: one writer per output. A second Create on the same path fails at once naming the holder
// (host and pid), and leaves the first run's checkpoints alone; a lock of a dead process on this
// host is taken over with a notice; different shards of one output never contend.
func TestWriterLock(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "emb.parquet")
	opt := WriterOptions{RowGroupBytes: safetyGroup, Resume: true}
	w1, err := Create(path, testCols, opt)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 30; i++ {
		if err := w1.Write(testRow(i, testCols)); err != nil {
			t.Fatal(err)
		}
	}
	host, _ := os.Hostname()
	_, err = Create(path, testCols, opt)
	var locked *LockedError
	if !errors.As(err, &locked) || locked.PID != os.Getpid() || locked.Host != host ||
		!strings.Contains(err.Error(), strconv.Itoa(os.Getpid())) || !strings.Contains(err.Error(), host) {
		t.Fatalf("second writer: %v, want a LockedError naming pid %d on %s", err, os.Getpid(), host)
	}
	// The same output spelt another way (through a link to its folder) is the same lock.
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(filepath.Join(link, "emb.parquet"), testCols, opt); !errors.As(err, &locked) {
		t.Fatalf("second writer through a link: %v", err)
	}
	// Shards of the same output are separate files with separate locks.
	for k := 1; k <= 2; k++ {
		ws, err := Create(PartPath(path, Shard{k, 2}), testCols, opt)
		if err != nil {
			t.Fatalf("shard %d/2 while the whole run writes: %v", k, err)
		}
		defer ws.Close()
	}
	if err := w1.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	tab, err := r.Load()
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	checkTable(t, tab, testCols, seq(30))
	if _, err := os.Stat(LockPath(path)); !os.IsNotExist(err) {
		t.Fatalf("lock left after Close: %v", err)
	}

	// A lock left by a process that is gone (on this host) is taken over, with a notice.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Skip("no `true` to make a dead pid:", err)
	}
	p2 := filepath.Join(dir, "stale.parquet")
	os.WriteFile(LockPath(p2), []byte(fmt.Sprintf("%s %d\n", host, dead.Process.Pid)), 0o644)
	var notes []string
	w2, err := Create(p2, testCols, WriterOptions{Notify: func(s string) { notes = append(notes, s) }})
	if err != nil {
		t.Fatalf("stale lock not taken over: %v", err)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], strconv.Itoa(dead.Process.Pid)) {
		t.Errorf("notice %q should name the dead pid %d", notes, dead.Process.Pid)
	}
	w2.Write(testRow(0, testCols))
	if err := w2.Close(); err != nil {
		t.Fatal(err)
	}
	// A lock held on another host is not taken over while its holder refreshes it: the pid
	// means nothing here.
	p3 := filepath.Join(dir, "remote.parquet")
	os.WriteFile(LockPath(p3), []byte(fmt.Sprintf("other-node-7 %d\n", dead.Process.Pid)), 0o644)
	if _, err := Create(p3, testCols, WriterOptions{}); !errors.As(err, &locked) || locked.Host != "other-node-7" {
		t.Errorf("lock of another host: %v", err)
	}
	// Once it has not been refreshed for LockStale, its holder is gone (a failed node): taken over.
	old := time.Now().Add(-LockStale - time.Minute)
	os.Chtimes(LockPath(p3), old, old)
	notes = nil
	w3, err := Create(p3, testCols, WriterOptions{Notify: func(s string) { notes = append(notes, s) }})
	if err != nil || len(notes) != 1 || !strings.Contains(notes[0], "other-node-7") {
		t.Fatalf("stale lock of another host: %v, notices %q", err, notes)
	}
	w3.Discard()

	// A restarted container runs as the same pid on the same host name (often pid 1): a lock
	// naming this process that this process does not hold is a previous incarnation's.
	p4 := filepath.Join(dir, "restarted.parquet")
	os.WriteFile(LockPath(p4), []byte(fmt.Sprintf("%s %d\n", host, os.Getpid())), 0o644)
	notes = nil
	w4, err := Create(p4, testCols, WriterOptions{Notify: func(s string) { notes = append(notes, s) }})
	if err != nil || len(notes) != 1 {
		t.Fatalf("lock of an earlier process with this pid: %v, notices %q", err, notes)
	}
	w4.Discard()
}

// 1: a writer refreshes its lock while it runs, so a lock only ages when its holder is gone.
func TestLockRefreshed(t *testing.T) {
	defer func(d time.Duration) { lockRefresh = d }(lockRefresh)
	lockRefresh = 10 * time.Millisecond
	path := filepath.Join(t.TempDir(), "emb.parquet")
	w, err := Create(path, testCols, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Discard()
	old := time.Now().Add(-time.Hour)
	os.Chtimes(LockPath(path), old, old)
	time.Sleep(100 * time.Millisecond)
	st, err := os.Stat(LockPath(path))
	if err != nil || time.Since(st.ModTime()) > time.Minute {
		t.Fatalf("lock not refreshed: %v %v", err, st.ModTime())
	}
}

// 1: the original failure: two resumed runs at once on one output used to end with a short or
// unreadable file while both exited 0. Now the second stops before touching anything.
func TestConcurrentResumeRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "emb.parquet")
	w, _ := Create(path, testCols, WriterOptions{RowGroupBytes: safetyGroup})
	for i := 0; i < 50; i++ {
		w.Write(testRow(i, testCols))
	}
	w.Abort() // an interrupted run: checkpoints on disk, lock released
	a, err := Create(path, testCols, WriterOptions{RowGroupBytes: safetyGroup, Resume: true})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadDir(PartialDir(path))
	if _, err := Create(path, testCols, WriterOptions{RowGroupBytes: safetyGroup, Resume: true}); err == nil {
		t.Fatal("a second resume on the same output was allowed")
	}
	after, _ := os.ReadDir(PartialDir(path))
	if len(after) != len(before) {
		t.Fatalf("the refused writer changed the checkpoints: %d files, then %d", len(before), len(after))
	}
	for i := 0; i < safetyRows; i++ {
		if r := testRow(i, testCols); !a.Done(r.ID) {
			a.Write(r)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	r, _ := Open(path)
	tab, err := r.Load()
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	checkTable(t, tab, testCols, seq(safetyRows))
}

// 2, 7: every checkpoint carries the run's identity; a resume whose identity differs (other
// weights, another source with the same ids, other layers) is refused, naming what differs.
func TestResumeRefusesAnotherRun(t *testing.T) {
	ident := []string{"weights.sha256", "source", "source.digest"}
	meta := map[string]string{"weights.sha256": "aaaa", "source": "idx /data/a", "source.digest": "d1", "created": "t1"}
	path := filepath.Join(t.TempDir(), "emb.parquet")
	w, _ := Create(path, testCols, WriterOptions{RowGroupBytes: safetyGroup, Metadata: meta, Identity: ident})
	for i := 0; i < 50; i++ {
		w.Write(testRow(i, testCols))
	}
	w.Abort()
	other := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range meta {
			m[a] = b
		}
		m[k] = v
		return m
	}
	for _, c := range []struct{ key, value string }{
		{"weights.sha256", "bbbb"},
		{"source", "idx /data/b"},
		{"source.digest", "d2"},
	} {
		_, err := Create(path, testCols, WriterOptions{Resume: true, Metadata: other(c.key, c.value), Identity: ident})
		if err == nil || !strings.Contains(err.Error(), c.key) {
			t.Errorf("resume with another %s: %v", c.key, err)
		}
	}
	// Other volatile metadata (the creation time) does not matter.
	w, err := Create(path, testCols, WriterOptions{Resume: true, Metadata: other("created", "t2"), Identity: ident})
	if err != nil {
		t.Fatal(err)
	}
	if w.NumDone() == 0 {
		t.Fatal("resume found no rows")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// The finished file is checked the same way.
	if _, err := Create(path, testCols, WriterOptions{Resume: true, Metadata: other("weights.sha256", "cccc"), Identity: ident}); err == nil || !strings.Contains(err.Error(), "weights.sha256") {
		t.Errorf("resume onto a finished file of other weights: %v", err)
	}
}

// 8: a folder holding stale parts of two shardings, or a file and its copy, is refused naming
// the files instead of read twice.
func TestOpenRefusesOverlappingFiles(t *testing.T) {
	meta := map[string]string{"source": "idx /data"}
	write := func(path string, idx []int) {
		writeRows(t, path, testCols, idx, WriterOptions{Metadata: meta})
	}
	copyDir := t.TempDir()
	write(filepath.Join(copyDir, "emb.parquet"), seq(20))
	b := readBytes(t, filepath.Join(copyDir, "emb.parquet"))
	os.WriteFile(filepath.Join(copyDir, "emb (copy).parquet"), b, 0o644)
	_, err := Open(copyDir)
	if err == nil || !strings.Contains(err.Error(), "emb.parquet") || !strings.Contains(err.Error(), "emb (copy).parquet") {
		t.Errorf("a file and its copy: %v", err)
	}

	mixed := t.TempDir()
	shardRows := func(s Shard, n int) []int {
		var idx []int
		for i := 0; i < n; i++ {
			if s.Contains(i) {
				idx = append(idx, i)
			}
		}
		return idx
	}
	for k := 1; k <= 2; k++ {
		write(PartPath(filepath.Join(mixed, "f.parquet"), Shard{k, 2}), shardRows(Shard{k, 2}, 30))
	}
	for k := 1; k <= 3; k++ {
		write(PartPath(filepath.Join(mixed, "f.parquet"), Shard{k, 3}), shardRows(Shard{k, 3}, 30))
	}
	_, err = Open(mixed)
	if err == nil || !strings.Contains(err.Error(), "f-part-1-of-2.parquet") || !strings.Contains(err.Error(), "of-3") {
		t.Errorf("parts of two shardings: %v", err)
	}

	// Two runs over one folder that changed in between (other digests, shifted indices): the
	// same ids twice.
	changed := t.TempDir()
	writeRows(t, filepath.Join(changed, "old.parquet"), testCols, seq(10), WriterOptions{Metadata: map[string]string{"source.path": "/data/pets", "source.digest": "d1"}})
	shifted := make([]Row, 0, 10)
	for i := 0; i < 10; i++ {
		r := testRow(i, testCols)
		r.Index = i + 1 // an image added in front
		shifted = append(shifted, r)
	}
	w, _ := Create(filepath.Join(changed, "new.parquet"), testCols, WriterOptions{Metadata: map[string]string{"source.path": "/data/pets", "source.digest": "d2"}})
	for _, r := range shifted {
		w.Write(r)
	}
	w.Close()
	if _, err := Open(changed); err == nil || !strings.Contains(err.Error(), "old.parquet") || !strings.Contains(err.Error(), "new.parquet") {
		t.Errorf("two runs over a changed folder: %v", err)
	}

	// Files of different sources may share indices: they are different items.
	ok := t.TempDir()
	writeRows(t, filepath.Join(ok, "train.parquet"), testCols, seq(10), WriterOptions{Metadata: map[string]string{"source": "idx train"}})
	writeRows(t, filepath.Join(ok, "test.parquet"), testCols, seq(10), WriterOptions{Metadata: map[string]string{"source": "idx test"}})
	r, err := Open(ok)
	if err != nil {
		t.Fatal(err)
	}
	if r.NumRows() != 20 {
		t.Errorf("%d rows, want 20", r.NumRows())
	}
	r.Close()
}

// 9: files with different columns in one folder give a clear error, not a panic in Open.
func TestOpenDifferentColumns(t *testing.T) {
	dir := t.TempDir()
	writeRows(t, filepath.Join(dir, "a.parquet"), testCols, seq(5), WriterOptions{})
	writeRows(t, filepath.Join(dir, "b.parquet"), testCols[:2], seq(5), WriterOptions{})
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("Open panicked: %v", r)
			}
		}()
		_, err = Open(dir)
	}()
	if err == nil || !strings.Contains(err.Error(), "b.parquet") || !strings.Contains(err.Error(), "a.parquet") || !strings.Contains(err.Error(), "columns") {
		t.Fatalf("different columns: %v", err)
	}
}

// 19: every byte of a file is covered: flipping any single byte of a finished file or of a
// checkpoint is either reported (naming the file) or leaves what is read unchanged; and a flip
// inside the data pages, the bulk of the file, is always reported.
func TestFlippedByteDetected(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "emb.parquet")
	cols := []Column{{Name: "v", Dim: 4}}
	writeRows(t, path, cols, seq(12), WriterOptions{})
	good := readBytes(t, path)
	// load renders what a reader sees, floats as bits, so that NaN payloads compare too.
	load := func(p string) (string, error) {
		r, err := Open(p)
		if err != nil {
			return "", err
		}
		defer r.Close()
		tab, err := r.Load()
		if err != nil {
			return "", err
		}
		bits := make([]uint32, len(tab.Vectors[0]))
		for i, x := range tab.Vectors[0] {
			bits[i] = math.Float32bits(x)
		}
		return fmt.Sprint(tab.Index, tab.IDs, tab.Labels, tab.HasLabel, tab.LabelNames, tab.Splits, bits, r.Metadata()), nil
	}
	want, err := load(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.parquet")
	silent, step := 0, 1
	if testing.Short() {
		step = 7 // every region still, in a seventh of the time (the race detector runs -short)
	}
	for i := 4; i < len(good)-8; i += step {
		b := bytes.Clone(good)
		b[i] ^= 0x01
		os.WriteFile(bad, b, 0o644)
		got, err := load(bad)
		if err != nil {
			if !strings.Contains(err.Error(), bad) {
				t.Errorf("byte %d: error %q does not name the file", i, err)
			}
			continue
		}
		if got != want {
			t.Fatalf("byte %d flipped: read different rows without an error", i)
		}
		silent++
	}
	t.Logf("%d of %d byte flips left the rows unchanged (footer fields the reader does not use)", silent, (len(good)-12)/step)

	// A checkpoint with a flipped byte in its data stops a resume, naming it.
	p2 := filepath.Join(dir, "resume.parquet")
	w, _ := Create(p2, testCols, WriterOptions{RowGroupBytes: safetyGroup})
	for i := 0; i < 30; i++ {
		w.Write(testRow(i, testCols))
	}
	w.Abort()
	chunks, _ := filepath.Glob(filepath.Join(PartialDir(p2), "chunk-000001-*.parquet"))
	c := readBytes(t, chunks[0])
	c[len(c)/3] ^= 0x10 // inside the vector data
	os.WriteFile(chunks[0], c, 0o644)
	if _, err := Create(p2, testCols, WriterOptions{Resume: true}); err == nil || !strings.Contains(err.Error(), chunks[0]) {
		t.Errorf("flipped byte in a checkpoint: %v", err)
	}
}

// 17: integer labels are kept as given; a manifest mixing integer and other labels is refused
// instead of silently renumbering every label; names are numbered in sorted order and the
// source says so.
func TestManifestLabels(t *testing.T) {
	dir := t.TempDir()
	m := filepath.Join(dir, "m.csv")
	writeFile(t, m, "a.png,1.0\nb.png,2.0\nc.png,3\n")
	if _, err := OpenSource(m); err == nil || !strings.Contains(err.Error(), "1.0") || !strings.Contains(err.Error(), "3") {
		t.Errorf("mixed integer and non-integer labels: %v", err)
	}
	writeFile(t, m, "a.png,7\nb.png,-1\nc.png,1440764\n")
	src, err := OpenSource(m)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []int64{7, -1, 1440764} {
		if it := src.Item(i); !it.HasLabel || it.Label != want {
			t.Errorf("item %d label %d, want %d as given", i, it.Label, want)
		}
	}
	if got := LabelScheme(src); !strings.Contains(got, "as given") {
		t.Errorf("label scheme %q", got)
	}
	writeFile(t, m, "a.png,zebra\nb.png,ant\nc.png,1.5\n")
	src, err = OpenSource(m)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []int64{2, 1, 0} { // sorted: 1.5, ant, zebra
		if it := src.Item(i); it.Label != want {
			t.Errorf("item %d label %d, want %d", i, it.Label, want)
		}
	}
	if got := LabelScheme(src); !strings.Contains(got, "sorted") || !strings.Contains(got, "0=1.5") {
		t.Errorf("label scheme %q should say names are numbered in sorted order", got)
	}
}

// 21: the folder source lists torchvision's IMG_EXTENSIONS that we decode, hidden files and
// folders included as torchvision does, and counts what it left out.
func TestFolderExtensionsAsTorchvision(t *testing.T) {
	root := t.TempDir()
	touch(t, root, "cat/a.jpg", "cat/b.gif", "cat/c.ppm", "cat/d.pgm", "cat/.e.png", "cat/f.TIFF", "cat/g.bmp",
		"cat/notes.txt", "dog/h.webp", "dog/.cache/i.jpeg")
	src, err := OpenSource(root)
	if err != nil {
		t.Fatal(err)
	}
	// torchvision 0.14.1 lists cat/.e.png cat/a.jpg cat/c.ppm cat/d.pgm cat/f.TIFF cat/g.bmp
	// dog/h.webp dog/.cache/i.jpeg on this tree; we leave out the two we cannot decode.
	want := []string{"cat/.e.png", "cat/a.jpg", "cat/f.TIFF", "cat/g.bmp", "dog/h.webp", "dog/.cache/i.jpeg"}
	if got := ids(src); !reflect.DeepEqual(got, want) {
		t.Fatalf("ids %q, want %q", got, want)
	}
	n, why := SkippedFiles(src)
	if n != 4 || !strings.Contains(why, ".ppm") || !strings.Contains(why, ".gif") {
		t.Errorf("skipped %d (%s), want 4 naming .ppm and .gif", n, why)
	}
}

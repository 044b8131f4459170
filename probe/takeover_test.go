package probe

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Issue 23 item 1: writer A, paused past the lease, has its lock taken over by writer B, which
// resumes; then A continues. A must refuse to write once superseded, the two never share a
// checkpoint name, and B's merge counts its rows.
func TestLockTakeoverFromPausedWriter(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "emb.parquet")
	cols := []Column{{Name: "v", Dim: 4}}
	row := func(i int) Row { r := testRow(i, cols); return r }
	two := 2*rowBytes(&Row{ID: row(10).ID, Vectors: [][]float32{make([]float32, 4)}}) + 1 // about two rows a checkpoint
	a, err := Create(path, cols, WriterOptions{RowGroupBytes: two})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if err := a.Write(row(i)); err != nil {
			t.Fatal(err)
		}
	}
	// A pauses (kill -STOP). Its lock ages past LockStale; B moves it aside, as acquireLock does
	// with a stale lock of another host, and takes the output over.
	os.Remove(LockPath(path))
	heldLocks.Delete(canonical(LockPath(path)))
	b, err := Create(path, cols, WriterOptions{RowGroupBytes: two, Resume: true, Notify: func(string) {}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 10; i < 20; i++ {
		if b.Done(row(i).ID) {
			continue
		}
		if err := b.Write(row(i)); err != nil {
			t.Fatal(err)
		}
	}
	// A continues with the rows it was given, in batches of its own.
	var aerr error
	for i := 10; i < 15 && aerr == nil; i++ {
		aerr = a.Write(row(i))
	}
	if aerr == nil {
		aerr = a.Close()
	}
	if aerr == nil || !strings.Contains(aerr.Error(), "superseded") {
		t.Errorf("the paused writer went on after losing its lock: %v", aerr)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.NumRows() != 20 {
		t.Errorf("%d rows, want 20", r.NumRows())
	}
}

// A checkpoint lost between the flush and the merge (a clash, a hand) fails the merge, naming the
// missing rows, instead of a short file reported as success.
func TestMergeCountsRows(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "emb.parquet")
	cols := []Column{{Name: "v", Dim: 4}}
	w, err := Create(path, cols, WriterOptions{RowGroupBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if err := w.Write(testRow(i, cols)); err != nil {
			t.Fatal(err)
		}
	}
	ents, _ := os.ReadDir(PartialDir(path))
	// Another writer's checkpoint of the same name replaced this one (the clash of item 1).
	other, _ := os.ReadFile(filepath.Join(PartialDir(path), ents[1].Name()))
	os.WriteFile(filepath.Join(PartialDir(path), ents[2].Name()), other, 0o644)
	err = w.Close()
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("merge with a checkpoint gone: %v", err)
	}
	if _, err := os.Stat(path); err == nil {
		t.Error("a short output was written")
	}
}

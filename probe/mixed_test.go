package probe

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perceiverkit/perceiver/internal/runid"
)

// Issue 23 item 4: parts of one output from other weights, another source, other layers or
// another precision are refused, naming the differing files and keys; AllowMixed reads them.
func TestOpenRefusesMixedRuns(t *testing.T) {
	base := map[string]string{"weights.sha256": "aaaa", "source": "idx /d", "source.path": "/d", "source.digest": "d1", "layers": "logits,cross_mean,one"}
	for _, c := range []struct{ key, value string }{
		{"weights.sha256", "bbbb"},
		{"source.digest", "d2"},
		{"layers", "one,logits,cross_mean"},
		{"precision", "bfloat16"},
	} {
		dir := t.TempDir()
		other := map[string]string{}
		for k, v := range base {
			other[k] = v
		}
		other[c.key] = c.value
		for k, meta := range []map[string]string{base, other} {
			var idx []int
			for i := 0; i < 20; i++ {
				if i%2 == k {
					idx = append(idx, i)
				}
			}
			writeRows(t, PartPath(filepath.Join(dir, "f.parquet"), Shard{k + 1, 2}), testCols, idx, WriterOptions{Metadata: meta})
		}
		_, err := Open(dir)
		if !errors.Is(err, runid.ErrMismatch) || !strings.Contains(err.Error(), "f-part-1-of-2.parquet") ||
			!strings.Contains(err.Error(), "f-part-2-of-2.parquet") || !strings.Contains(err.Error(), c.key) {
			t.Errorf("parts differing in %s: %v", c.key, err)
		}
		r, err := OpenWith(dir, OpenOptions{AllowMixed: true})
		if err != nil {
			t.Fatalf("%s with AllowMixed: %v", c.key, err)
		}
		if r.NumRows() != 20 {
			t.Errorf("%d rows", r.NumRows())
		}
		r.Close()
	}
}

// Issue 23 item 23: one part named explicitly opens, with a notice that it is part 1 of 2; a
// folder with a gap stays an error.
func TestOpenLonePart(t *testing.T) {
	dir := t.TempDir()
	p := PartPath(filepath.Join(dir, "features.parquet"), Shard{1, 2})
	writeRows(t, p, testCols, []int{0, 2, 4}, WriterOptions{})
	var notes []string
	r, err := OpenWith(p, OpenOptions{Notify: func(s string) { notes = append(notes, s) }})
	if err != nil {
		t.Fatal(err)
	}
	if r.NumRows() != 3 || len(notes) != 1 || !strings.Contains(notes[0], "part 1 of 2") {
		t.Errorf("%d rows, notices %q", r.NumRows(), notes)
	}
	r.Close()
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "part 2 of 2 is missing") {
		t.Errorf("folder with a gap: %v", err)
	}
}

package progress

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The expected lines below are written out by hand from the format documented
// on Bar.line: label, percentage, 20-cell bar, count/total, average rate since
// creation, then ETA (running) or "in" elapsed (finished); shorter lines are
// padded with spaces to blank the previous one.

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)} }

func TestBytesBarLines(t *testing.T) {
	clk := newClock()
	var buf bytes.Buffer
	b := New(&buf, 10_000_000, "weights", Bytes(), Force(), WithClock(clk.now))
	clk.advance(time.Second)
	b.Add(4_200_000)
	clk.advance(50 * time.Millisecond)
	b.Add(1_000_000) // within 100 ms of the last redraw: not drawn
	clk.advance(950 * time.Millisecond)
	b.Add(4_800_000)
	b.Finish()
	b.Finish() // second call is a no-op

	want := "\rweights   0% |                    | 0.0/10.0 MB  -- B/s  ETA --" +
		"\rweights  42% |########            | 4.2/10.0 MB  4.2 MB/s  ETA 0:01" +
		"\rweights 100% |####################| 10.0/10.0 MB  5.0 MB/s  0:02" + "   " +
		"\rweights 100% |####################| 10.0/10.0 MB  5.0 MB/s  in 0:02" + "\n"
	if got := buf.String(); got != want {
		t.Errorf("output\n got %q\nwant %q", got, want)
	}
}

func TestItemsUnknownTotal(t *testing.T) {
	clk := newClock()
	var buf bytes.Buffer
	b := New(&buf, 0, "embed", Unit("images"), Force(), WithClock(clk.now))
	clk.advance(2 * time.Second)
	b.Add(50)
	clk.advance(2 * time.Second)
	b.Add(150)
	b.Finish()
	want := "\rembed 0 images  -- images/s  0:00" +
		"\rembed 50 images  25.0 images/s  0:02" +
		"\rembed 200 images  50.0 images/s  0:04" +
		"\rembed 200 images  50.0 images/s  in 0:04\n"
	if got := buf.String(); got != want {
		t.Errorf("output\n got %q\nwant %q", got, want)
	}
}

func TestStartCountsOnlyNewWork(t *testing.T) {
	clk := newClock()
	var buf bytes.Buffer
	b := New(&buf, 800, "dl", Bytes(), Start(400), Force(), WithClock(clk.now))
	clk.advance(2 * time.Second)
	b.Add(200)
	want := "\rdl  50% |##########          | 400/800 B  -- B/s  ETA --" +
		"\rdl  75% |###############     | 600/800 B  100 B/s  ETA 0:02"
	if got := buf.String(); got != want {
		t.Errorf("output\n got %q\nwant %q", got, want)
	}
	if b.Count() != 600 {
		t.Errorf("Count = %d, want 600", b.Count())
	}
}

func TestRedrawAtMostTenPerSecond(t *testing.T) {
	clk := newClock()
	var buf bytes.Buffer
	b := New(&buf, 0, "x", Force(), WithClock(clk.now))
	// 1000 adds 1 ms apart span one second: at most one redraw per 100 ms.
	for range 1000 {
		clk.advance(time.Millisecond)
		b.Add(1)
	}
	if n := strings.Count(buf.String(), "\r"); n < 2 || n > 11 {
		t.Errorf("%d redraws in one second (including the first), want 2..11", n)
	}
}

func TestSilentUnlessTerminal(t *testing.T) {
	var buf bytes.Buffer
	b := New(&buf, 10, "quiet")
	b.Add(10)
	b.Finish()
	if buf.Len() != 0 {
		t.Errorf("bar wrote %q to a non-terminal writer", buf.String())
	}

	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b = New(f, 10, "quiet")
	b.Add(10)
	b.Finish()
	if st, _ := f.Stat(); st.Size() != 0 {
		t.Errorf("bar wrote %d bytes to a regular file", st.Size())
	}

	var nilBar *Bar
	nilBar.Add(1)
	nilBar.Finish()
	if nilBar.Count() != 0 {
		t.Error("nil bar counted")
	}
}

func TestConcurrentAdd(t *testing.T) {
	var buf bytes.Buffer
	b := New(&buf, 80_000, "par", Force())
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10_000 {
				b.Add(1)
			}
		}()
	}
	wg.Wait()
	b.Finish()
	if b.Count() != 80_000 {
		t.Fatalf("Count = %d, want 80000", b.Count())
	}
	out := buf.String()
	last := out[strings.LastIndex(out, "\r")+1:]
	if !strings.Contains(last, "100% |####################| 80000/80000 items") || !strings.HasSuffix(last, "\n") {
		t.Errorf("final line %q", last)
	}
}

func TestFormatting(t *testing.T) {
	for _, c := range []struct {
		n    int64
		want string
	}{{0, "0 B"}, {999, "999 B"}, {1000, "1.0 kB"}, {1_500_000_000, "1.5 GB"}, {262_000_000, "262.0 MB"}} {
		if got := sizeNumber(c.n, c.n) + " " + sizeUnit(c.n); got != c.want {
			t.Errorf("size(%d) = %q, want %q", c.n, got, c.want)
		}
	}
	for _, c := range []struct {
		d    time.Duration
		want string
	}{{0, "0:00"}, {59600 * time.Millisecond, "1:00"}, {3725 * time.Second, "1:02:05"}} {
		if got := clock(c.d); got != c.want {
			t.Errorf("clock(%v) = %q, want %q", c.d, got, c.want)
		}
	}
}

// BenchmarkAdd measures the per-call cost of Add on a drawing bar, the
// hot-loop case of feature extraction and downloads.
func BenchmarkAdd(b *testing.B) {
	var buf bytes.Buffer
	bar := New(&buf, 0, "bench", Force())
	for b.Loop() {
		bar.Add(1)
	}
	bar.Finish()
}

// TestLogLinesToFile (issue 29): to a file or pipe that is not a terminal (a Slurm log), the bar
// writes one whole line per 10 s, with no carriage returns, and a last line at Finish. The lines
// are written out by hand from Bar.line's format.
func TestLogLinesToFile(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := New(f, 100, "extract", Unit("img"), WithClock(clk.now))
	clk.advance(5 * time.Second)
	b.Add(10) // under 10 s since the start: no line
	clk.advance(7 * time.Second)
	b.Add(20) // 12 s: 30 images at 2.5 img/s, 70 left take 28 s
	clk.advance(time.Second)
	b.Add(10) // 1 s after the last line: none
	clk.advance(12 * time.Second)
	b.Add(60) // 25 s: all 100 at 4.0 img/s
	b.Finish()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "extract  30% |######              | 30/100 img  2.5 img/s  ETA 0:28\n" +
		"extract 100% |####################| 100/100 img  4.0 img/s  0:25\n" +
		"extract 100% |####################| 100/100 img  4.0 img/s  in 0:25\n"
	if string(got) != want {
		t.Errorf("log:\n%q\nwant\n%q", got, want)
	}
	if b.Enabled() {
		t.Error("Enabled() true for a regular file: it means drawing in place")
	}
}

package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"
)

// redrawEvery bounds how often the line is redrawn (about 10 times a second).
const redrawEvery = 100 * time.Millisecond

// logEvery is how often a bar writing to a file or pipe (a Slurm log) prints a line.
const logEvery = 10 * time.Second

// barWidth is the number of cells of the drawn bar.
const barWidth = 20

// Bar is a progress line. Create it with New.
type Bar struct {
	w       io.Writer
	label   string
	total   int64
	unit    string
	bytes   bool
	force   bool
	start   int64 // count at creation: a resumed download's rate counts only new work
	now     func() time.Time
	began   time.Time
	enabled bool
	logging bool // w is a file or pipe, not a terminal: whole lines every logEvery, no \r

	count    atomic.Int64
	note     atomic.Pointer[string] // shown after the label (SetNote), e.g. a training loss
	lastDraw atomic.Int64           // nanoseconds since began at the last redraw
	finished atomic.Bool

	mu      sync.Mutex // serialises writes to w
	lastLen int        // length of the previous line, to blank leftovers
}

// Option configures a Bar.
type Option func(*Bar)

// Bytes makes the bar count bytes and print sizes and rates as B, kB, MB, GB.
func Bytes() Option { return func(b *Bar) { b.bytes = true; b.unit = "B" } }

// Unit names what the bar counts, such as "images"; the default is "items".
func Unit(name string) Option { return func(b *Bar) { b.unit = name } }

// Force draws even when the writer is not a terminal (tests, forced logs).
func Force() Option { return func(b *Bar) { b.force = true } }

// Start sets the count already done when the bar is created, such as the bytes
// of a partial download being resumed. The rate counts only what is added.
func Start(n int64) Option { return func(b *Bar) { b.start = n } }

// WithClock replaces time.Now, for reproducible output in tests and examples.
func WithClock(now func() time.Time) Option { return func(b *Bar) { b.now = now } }

// New returns a bar writing to w that expects total units of work; total <= 0
// means unknown, and then no percentage, bar or time left is shown. The bar
// is silent unless w is a terminal or Force is given.
func New(w io.Writer, total int64, label string, opts ...Option) *Bar {
	b := &Bar{w: w, label: label, total: total, unit: "items", now: time.Now}
	for _, o := range opts {
		o(b)
	}
	b.enabled = w != nil && (b.force || isTerminal(w))
	b.logging = !b.enabled && isFile(w)
	b.began = b.now()
	b.count.Store(b.start)
	if b.enabled {
		b.mu.Lock()
		b.draw(false)
		b.mu.Unlock()
	}
	return b
}

// Enabled reports whether the bar draws in place (its writer is a terminal, or Force was given).
// To a file or pipe it prints a whole line every 10 s instead (and a last one if it printed any),
// which a command may supplement with its own occasional lines.
func (b *Bar) Enabled() bool { return b != nil && b.enabled }

// isFile reports whether w is an open file (a log file or a pipe to one) rather than an
// in-memory writer.
func isFile(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && f != nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Add records n more units of work and redraws if the last redraw is older
// than 100 ms.
func (b *Bar) Add(n int64) {
	if b == nil {
		return
	}
	b.count.Add(n)
	if !(b.enabled || b.logging) || b.finished.Load() {
		return
	}
	every := redrawEvery
	if b.logging {
		every = logEvery
	}
	since := int64(b.now().Sub(b.began))
	last := b.lastDraw.Load()
	if since-last < int64(every) || !b.lastDraw.CompareAndSwap(last, since) {
		return
	}
	// Only the goroutine that won the swap draws; TryLock keeps Add from ever
	// waiting on a slow writer.
	if b.mu.TryLock() {
		if !b.finished.Load() {
			b.draw(false)
		}
		b.mu.Unlock()
	}
}

// SetNote sets a short text shown after the label, such as "loss 0.412"; it is redrawn with
// the next Add.
func (b *Bar) SetNote(s string) { b.note.Store(&s) }

// Count reports the units of work recorded so far, including Start.
func (b *Bar) Count() int64 {
	if b == nil {
		return 0
	}
	return b.count.Load()
}

// Finish draws the final line, with the time taken, and ends it with a
// newline. Calls after the first do nothing.
func (b *Bar) Finish() {
	if b == nil || !(b.enabled || b.logging) || b.finished.Swap(true) {
		return
	}
	if b.logging {
		// A short run stays silent in a log; a long one ends with its total and time.
		if b.lastDraw.Load() > 0 || b.now().Sub(b.began) >= logEvery {
			b.mu.Lock()
			b.draw(true)
			b.mu.Unlock()
		}
		return
	}
	b.mu.Lock()
	b.draw(true)
	io.WriteString(b.w, "\n")
	b.mu.Unlock()
}

// draw writes the line; the caller holds mu.
func (b *Bar) draw(final bool) {
	line := b.line(final)
	if b.logging {
		io.WriteString(b.w, line+"\n")
		return
	}
	pad := ""
	if n := b.lastLen - len(line); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	b.lastLen = len(line)
	io.WriteString(b.w, "\r"+line+pad)
}

// line formats the current state, e.g.
// "weights  42% |########            | 4.2/10.0 MB  1.3 MB/s  ETA 0:04".
func (b *Bar) line(final bool) string {
	n := b.count.Load()
	elapsed := b.now().Sub(b.began)
	var s strings.Builder
	if b.label != "" {
		s.WriteString(b.label)
		s.WriteString(" ")
	}
	if p := b.note.Load(); p != nil && *p != "" {
		s.WriteString(*p)
		s.WriteString(" ")
	}
	if b.total > 0 {
		frac := float64(n) / float64(b.total)
		frac = min(max(frac, 0), 1)
		filled := int(frac * barWidth)
		fmt.Fprintf(&s, "%3d%% |%s%s| ", int(frac*100), strings.Repeat("#", filled), strings.Repeat(" ", barWidth-filled))
		if b.bytes {
			fmt.Fprintf(&s, "%s/%s %s", sizeNumber(n, b.total), sizeNumber(b.total, b.total), sizeUnit(b.total))
		} else {
			fmt.Fprintf(&s, "%d/%d %s", n, b.total, b.unit)
		}
	} else if b.bytes {
		fmt.Fprintf(&s, "%s %s", sizeNumber(n, n), sizeUnit(n))
	} else {
		fmt.Fprintf(&s, "%d %s", n, b.unit)
	}

	done := n - b.start
	var rate float64
	if elapsed > 0 {
		rate = float64(done) / elapsed.Seconds()
	}
	switch {
	case elapsed <= 0 || done <= 0:
		fmt.Fprintf(&s, "  -- %s/s", b.unit)
	case b.bytes:
		fmt.Fprintf(&s, "  %s %s/s", sizeNumber(int64(rate), int64(rate)), sizeUnit(int64(rate)))
	default:
		fmt.Fprintf(&s, "  %s %s/s", rateNumber(rate), b.unit)
	}

	switch {
	case final:
		fmt.Fprintf(&s, "  in %s", clock(elapsed))
	case b.total > 0 && rate > 0 && n < b.total:
		left := time.Duration(float64(b.total-n) / rate * float64(time.Second))
		fmt.Fprintf(&s, "  ETA %s", clock(left))
	case b.total > 0 && n < b.total:
		s.WriteString("  ETA --")
	default:
		fmt.Fprintf(&s, "  %s", clock(elapsed))
	}
	return s.String()
}

// sizePrefixes are the SI steps used for byte counts, as tqdm and the hub do.
var sizePrefixes = []string{"B", "kB", "MB", "GB", "TB", "PB"}

// sizeScale picks the SI step for a byte count.
func sizeScale(ref int64) int {
	i := 0
	for v := float64(ref); v >= 1000 && i < len(sizePrefixes)-1; v /= 1000 {
		i++
	}
	return i
}

// sizeNumber prints n in the SI step chosen for ref, so "4.2/10.0 MB" share
// one unit.
func sizeNumber(n, ref int64) string {
	i := sizeScale(ref)
	if i == 0 {
		return fmt.Sprintf("%d", n)
	}
	v := float64(n)
	for range i {
		v /= 1000
	}
	return fmt.Sprintf("%.1f", v)
}

func sizeUnit(ref int64) string { return sizePrefixes[sizeScale(ref)] }

func rateNumber(r float64) string {
	if r >= 100 {
		return fmt.Sprintf("%.0f", r)
	}
	return fmt.Sprintf("%.1f", r)
}

// clock prints a duration as m:ss, or h:mm:ss from one hour on.
func clock(d time.Duration) string {
	sec := int64(d.Round(time.Second) / time.Second)
	h, m, s := sec/3600, sec/60%60, sec%60
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, m, s)
	}
	return fmt.Sprintf("%d:%02d", m, s)
}

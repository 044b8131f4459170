package preprocess

import (
	"fmt"
	"io"
	"strings"
	"sync"
)

// Skip is one input that could not be used, and why.
type Skip struct {
	Path string
	Err  error
}

// Skips records bad inputs of a batch run so that the run continues: each one
// is reported as a single line naming the path and the reason and counted. Safe for
// concurrent use.
type Skips struct {
	mu   sync.Mutex
	w    io.Writer
	list []Skip
}

// NewSkips returns a recorder that reports to w (nil: record silently).
func NewSkips(w io.Writer) *Skips { return &Skips{w: w} }

// Add records path as skipped because of err.
func (s *Skips) Add(path string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.list = append(s.list, Skip{Path: path, Err: err})
	if s.w != nil {
		// Errors from this package already start with the file name.
		if msg := err.Error(); strings.Contains(msg, path) {
			fmt.Fprintf(s.w, "skip: %s\n", msg)
		} else {
			fmt.Fprintf(s.w, "skip %s: %s\n", path, msg)
		}
	}
}

// Count returns how many inputs were skipped.
func (s *Skips) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.list)
}

// List returns a copy of the skipped inputs in the order they were added.
func (s *Skips) List() []Skip {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Skip(nil), s.list...)
}

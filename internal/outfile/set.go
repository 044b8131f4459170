package outfile

import (
	"fmt"
	"path/filepath"
)

// Set is the outputs of one command run. Add names each target as soon as it is known, Check
// refuses the whole set before the first byte is written: a non-regular target, an existing file
// when the set is Fresh, or two outputs of the run with one name (two frames x.jpg and x.png
// would both write x.flo). A command that checks its set first never leaves half a set behind a
// refusal.
type Set struct {
	// Fresh refuses existing regular files too (commands without --force or --resume).
	Fresh bool
	paths []string
	seen  map[string]string // cleaned path → what added it
}

// Add records outputs of the run. A path added twice (by two inputs) is an error naming both.
func (s *Set) Add(paths ...string) error {
	if s.seen == nil {
		s.seen = map[string]string{}
	}
	for _, p := range paths {
		key := filepath.Clean(p)
		if _, dup := s.seen[key]; dup {
			return fmt.Errorf("two outputs of this run are named %s: rename one input or write them to separate folders", p)
		}
		s.seen[key] = p
		s.paths = append(s.paths, p)
	}
	return nil
}

// AddFrom is Add for an output derived from an input: a clash names both inputs.
func (s *Set) AddFrom(path, from string) error {
	if s.seen == nil {
		s.seen = map[string]string{}
	}
	key := filepath.Clean(path)
	if prev, dup := s.seen[key]; dup {
		return fmt.Errorf("%s and %s would both write %s: rename one, or write them to separate folders", prev, from, path)
	}
	s.seen[key] = from
	s.paths = append(s.paths, path)
	return nil
}

// Check checks every target (CheckTarget, or CheckNew when Fresh) and returns the first refusal.
func (s *Set) Check() error {
	for _, p := range s.paths {
		check := CheckTarget
		if s.Fresh {
			check = CheckNew
		}
		if err := check(p); err != nil {
			return err
		}
	}
	return nil
}

// Paths returns the targets in the order they were added.
func (s *Set) Paths() []string { return append([]string(nil), s.paths...) }

// CheckAll checks every path with CheckTarget: for a set known at once.
func CheckAll(paths ...string) error {
	s := Set{}
	if err := s.Add(paths...); err != nil {
		return err
	}
	return s.Check()
}

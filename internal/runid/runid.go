package runid

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The keys every command spells the same way.
const (
	Weights      = "weights.sha256"           // SHA-256 of the weights file (hex)
	Config       = "config.json"              // the model configuration, as JSON
	Preprocessor = "preprocessor_config.json" // the preprocessing settings, as JSON
	SourcePath   = "source.path"              // the data source, absolute with links resolved
	SourceDigest = "source.digest"            // digest of the source's items (ids, order, labels)
	Layers       = "layers"                   // the representations stored, in order
	Precision    = "precision"                // the packed weights' arithmetic: float32, bfloat16
)

// ReaderKeys are what the parts of one data set of features must share: one model, one source,
// the same representations at the same precision.
var ReaderKeys = []string{Weights, SourceDigest, Layers, Precision}

// Defaults are the values a key had in outputs written before it was recorded.
var Defaults = map[string]string{Precision: "float32"}

// ErrMismatch marks a refusal of two identities that differ. Test with errors.Is.
var ErrMismatch = errors.New("different runs")

// Diff is one key whose values differ.
type Diff struct {
	Key  string
	A, B string // the values ("" with Absent…)
	// AbsentA and AbsentB say a side does not record the key.
	AbsentA, AbsentB bool
}

// Compare returns the keys (in the order given) whose values differ between a and b.
func Compare(a, b map[string]string, keys []string) []Diff {
	var out []Diff
	for _, k := range keys {
		va, oka := a[k]
		vb, okb := b[k]
		if d, ok := Defaults[k]; ok {
			if !oka {
				va, oka = d, true
			}
			if !okb {
				vb, okb = d, true
			}
		}
		if oka == okb && va == vb {
			continue
		}
		out = append(out, Diff{Key: k, A: va, B: vb, AbsentA: !oka, AbsentB: !okb})
	}
	return out
}

// MismatchError refuses two identities: the files (or runs) compared and the keys that differ.
type MismatchError struct {
	A, B  string // what was compared, e.g. two file names, or "run.json" and "this run"
	Diffs []Diff
	Hint  string // what to do, e.g. "use another --out"
}

func (e *MismatchError) Error() string {
	parts := make([]string, len(e.Diffs))
	for i, d := range e.Diffs {
		parts[i] = fmt.Sprintf("%s (%s in %s, %s in %s)", d.Key, show(d.A, d.AbsentA), e.A, show(d.B, d.AbsentB), e.B)
	}
	verb := "differs"
	if len(parts) > 1 {
		verb = "differ"
	}
	msg := fmt.Sprintf("%s and %s are not of one run: %s %s", e.A, e.B, strings.Join(parts, ", "), verb)
	if e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

func (e *MismatchError) Unwrap() error { return ErrMismatch }

// Keys returns the keys that differ.
func (e *MismatchError) Keys() []string {
	k := make([]string, len(e.Diffs))
	for i, d := range e.Diffs {
		k[i] = d.Key
	}
	return k
}

// Check compares the identities of nameA and nameB over keys and returns a *MismatchError
// naming both and the keys that differ, or nil.
func Check(nameA string, a map[string]string, nameB string, b map[string]string, keys []string, hint string) error {
	if d := Compare(a, b, keys); len(d) > 0 {
		return &MismatchError{A: nameA, B: nameB, Diffs: d, Hint: hint}
	}
	return nil
}

// show shortens a value (a digest, a JSON configuration) for a one-line message.
func show(s string, absent bool) string {
	switch {
	case absent:
		return "absent"
	case len(s) <= 40:
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:16]+"…") + fmt.Sprintf(" (%d bytes)", len(s))
}

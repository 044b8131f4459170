package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/perceiverkit/perceiver/explain"
)

// targetFlag is --target, the one parser every command that takes a class uses: an index, top1
// (the model's prediction, the default), or a label of config.json's id2label in full or one of
// its comma-separated names (explain.ParseTarget resolves it once the labels and logits are
// known). A negative number is refused when the flag is parsed: -1 never silently means the
// prediction.
type targetFlag struct{ spec string }

// targetVar registers --target on fs.
func targetVar(fs *flag.FlagSet, usage string) *targetFlag {
	t := &targetFlag{spec: "top1"}
	fs.Var(t, "target", usage+": a class index, top1 (the model's prediction), or a label from config.json")
	return t
}

func (t *targetFlag) String() string {
	if t == nil || t.spec == "" {
		return "top1"
	}
	return t.spec
}

// Set stores the value; check, after the flags are parsed, refuses a bad one in one line (an
// error from Set would print the whole usage).
func (t *targetFlag) Set(s string) error {
	t.spec = strings.TrimSpace(s)
	if t.spec == "" {
		t.spec = "top1"
	}
	return nil
}

// check refuses a negative number with the same words in every command, before any work.
func (t *targetFlag) check() error {
	if n, err := strconv.Atoi(t.String()); err == nil && n < 0 {
		return fmt.Errorf("--target %s: class indices start at 0; use top1 for the model's prediction", t.spec)
	}
	return nil
}

// top1 reports whether the target is the prediction (of each image, for a batch).
func (t *targetFlag) top1() bool { return strings.EqualFold(t.String(), "top1") }

// resolve returns the class index for a model's labels and one image's logits.
func (t *targetFlag) resolve(labels []string, logits []float32) (int, error) {
	return explain.ParseTarget(t.String(), labels, logits)
}

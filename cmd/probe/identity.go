package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/perceiverkit/perceiver/probe"
)

// Every command that reads stored features opens them through openFeatures: the parts of a
// folder or of a sharded run must be of one run (runid.ReaderKeys: weights, source, layers,
// precision), or the command stops naming the two files and the keys; --allow-mixed reads a
// deliberate mix. A part file named on its own is read with a notice.

// allowMixedFlag registers --allow-mixed.
func allowMixedFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("allow-mixed", false, "read feature files of different runs together (other weights, sources, layers or precision): for a deliberate cross-model folder")
}

// openFeatures opens a features file or folder for reading, checking the parts' run identity.
func openFeatures(path string, allowMixed bool, stderr io.Writer) (*probe.Reader, error) {
	return probe.OpenWith(path, probe.OpenOptions{AllowMixed: allowMixed, Notify: func(msg string) { fmt.Fprintln(stderr, "note:", msg) }})
}

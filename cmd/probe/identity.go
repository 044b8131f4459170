package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"slices"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/internal/runid"
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

// modelIdentity returns the run-identity keys of a model (runid.Weights, Config, Preprocessor,
// Precision). A model without a weights file (--random) is named by how its weights were made.
func modelIdentity(m *core.Model, random string) (map[string]string, error) {
	cfg, err := json.Marshal(m.Config)
	if err != nil {
		return nil, err
	}
	prep, err := json.Marshal(m.Preprocessor)
	if err != nil {
		return nil, err
	}
	id := map[string]string{runid.Config: string(cfg), runid.Preprocessor: string(prep), runid.Precision: modelPrecision(m)}
	if p := m.WeightsPath(); p != "" {
		sum, err := sha256File(p)
		if err != nil {
			return nil, err
		}
		id[runid.Weights] = sum
	} else {
		id[runid.Weights] = "random: " + random
	}
	return id, nil
}

// sourceIdentity returns the run-identity keys of a data source: its resolved path and the digest
// of its items.
func sourceIdentity(data string, src probe.Source) map[string]string {
	return map[string]string{runid.SourcePath: resolvedPath(data), runid.SourceDigest: probe.Digest(src)}
}

// flatIdentity turns a run's settings (a struct of JSON fields) and its identity keys into one map
// for runid.Check: each setting is compared by its JSON value. Fields named in skip (informative
// only, such as the model's path) are left out.
func flatIdentity(settings any, identity map[string]string, skip ...string) (map[string]string, error) {
	b, err := json.Marshal(settings)
	if err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for k, v := range fields {
		if !slices.Contains(skip, k) {
			out[k] = string(v)
		}
	}
	for k, v := range identity {
		out[k] = v
	}
	return out, nil
}

// unionKeys returns the keys of the maps, sorted.
func unionKeys(ms ...map[string]string) []string {
	var keys []string
	for _, m := range ms {
		for k := range m {
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	slices.Sort(keys)
	return keys
}

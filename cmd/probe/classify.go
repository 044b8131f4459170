package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/core/preprocess"
)

func init() {
	register("classify", "print the top-K labels of images", runClassify)
}

type prediction struct {
	Index int     `json:"index"`
	Label string  `json:"label"`
	Prob  float64 `json:"prob"`
}

func runClassify(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("classify", "usage: probe classify --model DIR [--top K] [--json] IMAGE...", stderr)
	var mf modelFlags
	mf.register(fs)
	precision := precisionFlag(fs)
	top := fs.Int("top", 5, "how many labels to print per image")
	asJSON := fs.Bool("json", false, "print one JSON object per line per image: {\"image\", \"top\": [{\"index\", \"label\", \"prob\"}]}")
	if err := parseFlags(fs, args); err != nil {
		return errUsage
	}
	if mf.model == "" {
		return badUsage(fs, "args", "model")
	}
	if fs.NArg() == 0 {
		return usageFault(fs, "no image: give image files after the flags")
	}
	if *top < 1 {
		return fmt.Errorf("--top %d: must be at least 1", *top)
	}
	m, err := mf.open(stderr)
	if err != nil {
		return err
	}
	defer m.Close()
	if err := applyPrecision(m, *precision, stderr); err != nil {
		return err
	}
	labels := m.Config.Labels()
	enc := json.NewEncoder(stdout)
	skips := preprocess.NewSkips(stderr)
	for _, path := range fs.Args() {
		img, err := m.Preprocessor.LoadImage(path, mf.decodeOptions())
		if err != nil {
			skips.Add(path, err)
			continue
		}
		out, err := m.Forward(img.Pixels, 1, img.H, img.W, core.Trace{})
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if err := checkFinite("logits", out.Logits); err != nil {
			skips.Add(path, fmt.Errorf("%s: model %s: %w", path, mf.model, err))
			continue
		}
		preds := topK(out.Logits, labels, *top)
		if *asJSON {
			if err := enc.Encode(struct {
				Image string       `json:"image"`
				Top   []prediction `json:"top"`
			}{path, preds}); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintln(stdout, path)
		for _, p := range preds {
			fmt.Fprintf(stdout, "  %7.4f  %s (%d)\n", p.Prob, p.Label, p.Index)
		}
	}
	if n := skips.Count(); n > 0 {
		return fmt.Errorf("%d of %d images skipped (reasons above)", n, fs.NArg())
	}
	return nil
}

// topK returns the k most probable classes under the softmax of logits, most probable first.
func topK(logits []float32, labels []string, k int) []prediction {
	mx := math.Inf(-1)
	for _, v := range logits {
		mx = math.Max(mx, float64(v))
	}
	var sum float64
	probs := make([]float64, len(logits))
	for i, v := range logits {
		probs[i] = math.Exp(float64(v) - mx)
		sum += probs[i]
	}
	idx := make([]int, len(logits))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return probs[idx[a]] > probs[idx[b]] })
	k = min(k, len(idx))
	out := make([]prediction, k)
	for i, c := range idx[:k] {
		out[i] = prediction{Index: c, Label: labels[c], Prob: probs[c] / sum}
	}
	return out
}

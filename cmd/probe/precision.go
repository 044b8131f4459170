package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/internal/progress"
	"github.com/perceiverkit/perceiver/probe"
)

func init() {
	register("precision", "measure what bfloat16 products cost in accuracy: every layer against float32 on a data set", runPrecision)
}

// precisionLayer compares one representation over the images: the relative error
// ‖bf16 − f32‖ / ‖f32‖ and the cosine similarity of the two, per image (mean and worst) and over
// all images together (pooled sums).
type precisionLayer struct {
	Name         string  `json:"name"`
	Depth        int     `json:"depth"` // 0 after the cross-attention, j after self-attention application j, then the decoder
	RelErr       float64 `json:"rel_err"`
	RelErrMax    float64 `json:"rel_err_max"`
	CosineMean   float64 `json:"cosine_mean"`
	CosineMin    float64 `json:"cosine_min"`
	MeanRelErr   float64 `json:"mean_rel_err"` // of the mean over latents (the stored *_mean column)
	MeanCosine   float64 `json:"mean_cosine"`  // likewise, mean over images
	sumD2, sumF2 float64 // pooled sums
	sumMD2       float64
	sumMF2       float64
}

type precisionReport struct {
	Model         string           `json:"model"`
	Source        string           `json:"source"`
	Images        int              `json:"images"`
	Kernel        string           `json:"kernel"`
	Layers        []precisionLayer `json:"layers"`
	Top1Agreement float64          `json:"top1_agreement"` // fraction of images whose top-1 class is the same
	Top5Agreement float64          `json:"top5_agreement"` // fraction whose top-5 sets are equal
	Top5Overlap   float64          `json:"top5_overlap"`   // mean |top5 ∩ top5| / 5
	Skipped       int              `json:"skipped"`
}

func runPrecision(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("precision", "usage: probe precision (--model DIR | --random [--arch fourier|learned|conv]) --data SOURCE --out DIR [--limit N]", stderr)
	var mf modelFlags
	mf.register(fs)
	random := fs.Bool("random", false, "the full-size architecture with random weights (seed 1) instead of --model")
	arch := archFlag(fs)
	data := fs.String("data", "", "images to compare on: any source extract takes")
	out := fs.String("out", "", "output folder (new): report.json, report.md, error-vs-depth.png")
	limit := fs.Int("limit", 100, "compare on the first N images of the source")
	if err := parseFlags(fs, args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 {
		return badUsage(fs)
	}
	switch {
	case *data == "":
		return fmt.Errorf("--data is required")
	case *out == "":
		return fmt.Errorf("--out is required")
	case *random == (mf.model != ""):
		return fmt.Errorf("give --model DIR or --random, not both or neither")
	case *limit < 1:
		return fmt.Errorf("--limit %d: want at least 1", *limit)
	}
	paths := []string{filepath.Join(*out, "report.json"), filepath.Join(*out, "report.md"), filepath.Join(*out, "error-vs-depth.png")}
	for _, p := range paths {
		if err := refuseExisting(p); err != nil {
			return err
		}
	}
	src, err := probe.OpenSource(*data)
	if err != nil {
		return err
	}
	if src.Len() == 0 {
		return fmt.Errorf("%s: no items", *data)
	}
	f32, name, err := mf.openOrRandomNamed(*random, *arch, stderr)
	if err != nil {
		return err
	}
	defer f32.Close()
	bf, _, err := mf.openOrRandomNamed(*random, *arch, io.Discard)
	if err != nil {
		return err
	}
	defer bf.Close()
	if err := applyPrecision(bf, "bf16", stderr); err != nil {
		return err
	}
	if _, flow := f32.TrainSize(); flow {
		return fmt.Errorf("probe precision compares the image classifiers; the optical flow model is not one")
	}
	kernel, _ := core.BF16Kernel()
	rep := precisionReport{Model: name, Source: src.Name(), Kernel: kernel}
	n := min(*limit, src.Len())
	bar := progress.New(stderr, int64(n), "precision", progress.Unit("img"))
	var top1, top5, overlap float64
	cosines := map[int][]float64{}
	for i := 0; i < n; i++ {
		it := src.Item(i)
		img, err := loadItem(f32, it, mf.decodeOptions())
		if err != nil {
			fmt.Fprintf(stderr, "skip %s: %v\n", it.ID, err)
			rep.Skipped++
			bar.Add(1)
			continue
		}
		tr := core.Trace{HiddenStates: true, DecoderOutput: true}
		a, err := f32.Forward(img.Pixels, 1, img.H, img.W, tr)
		if err != nil {
			return fmt.Errorf("%s: %w", it.ID, err)
		}
		b, err := bf.Forward(img.Pixels, 1, img.H, img.W, tr)
		if err != nil {
			return fmt.Errorf("%s: %w", it.ID, err)
		}
		pairs := [][2][]float32{}
		for j := range a.HiddenStates {
			pairs = append(pairs, [2][]float32{a.HiddenStates[j], b.HiddenStates[j]})
		}
		pairs = append(pairs, [2][]float32{a.DecoderOutput, b.DecoderOutput}, [2][]float32{a.Logits, b.Logits})
		if rep.Layers == nil {
			for j := range pairs {
				l := precisionLayer{Name: fmt.Sprintf("hidden_states.%d", j), Depth: j, CosineMin: 1}
				switch j {
				case len(pairs) - 2:
					l.Name = "decoder_output"
				case len(pairs) - 1:
					l.Name = "logits"
				}
				rep.Layers = append(rep.Layers, l)
			}
		}
		L, D := f32.Config.NumLatents, f32.Config.DLatents
		for j, p := range pairs {
			l := &rep.Layers[j]
			d2, f2, dot, b2 := sums(p[0], p[1])
			l.sumD2 += d2
			l.sumF2 += f2
			l.RelErrMax = max(l.RelErrMax, math.Sqrt(d2/f2))
			c := dot / math.Sqrt(f2*b2)
			cosines[j] = append(cosines[j], c)
			l.CosineMin = min(l.CosineMin, c)
			if j < len(a.HiddenStates) {
				// The *_mean column exactly as extract computes it.
				ma, mb := make([]float32, D), make([]float32, D)
				core.ReduceLatents(ma, p[0], L, "mean")
				core.ReduceLatents(mb, p[1], L, "mean")
				md2, mf2, mdot, mb2 := sums(ma, mb)
				l.sumMD2 += md2
				l.sumMF2 += mf2
				l.MeanCosine += mdot / math.Sqrt(mf2*mb2)
			}
		}
		ta, tb := topIndices(a.Logits, 5), topIndices(b.Logits, 5)
		if ta[0] == tb[0] {
			top1++
		}
		common := 0
		for _, c := range ta {
			if slices.Contains(tb, c) {
				common++
			}
		}
		if common == len(ta) {
			top5++
		}
		overlap += float64(common) / float64(len(ta))
		rep.Images++
		bar.Add(1)
	}
	bar.Finish()
	if rep.Images == 0 {
		return fmt.Errorf("no image could be compared (%d skipped)", rep.Skipped)
	}
	k := float64(rep.Images)
	rep.Top1Agreement, rep.Top5Agreement, rep.Top5Overlap = top1/k, top5/k, overlap/k
	for j := range rep.Layers {
		l := &rep.Layers[j]
		l.RelErr = math.Sqrt(l.sumD2 / l.sumF2)
		l.CosineMean = mean(cosines[j])
		if l.sumMF2 > 0 {
			l.MeanRelErr = math.Sqrt(l.sumMD2 / l.sumMF2)
			l.MeanCosine /= k
		}
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	if err := writeNewFile(paths[0], func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}); err != nil {
		return err
	}
	if err := writeNewFile(paths[1], func(w io.Writer) error { return precisionMarkdown(w, &rep) }); err != nil {
		return err
	}
	if err := writeNewFile(paths[2], func(w io.Writer) error { return precisionPlot(w, &rep, *random) }); err != nil {
		return err
	}
	last := rep.Layers[len(rep.Layers)-1]
	fmt.Fprintf(stdout, "%d images: logits relative error %.3g, cosine %.6f; top-1 agreement %.1f%%, top-5 sets equal %.1f%%\n",
		rep.Images, last.RelErr, last.CosineMean, 100*rep.Top1Agreement, 100*rep.Top5Agreement)
	fmt.Fprintf(stdout, "wrote %s\n", strings.Join(paths, ", "))
	return nil
}

// sums returns Σ(b−a)², Σa², Σa·b and Σb² in float64.
func sums(a, b []float32) (d2, a2, dot, b2 float64) {
	for i, x := range a {
		y := float64(b[i])
		d := y - float64(x)
		d2 += d * d
		a2 += float64(x) * float64(x)
		dot += float64(x) * y
		b2 += y * y
	}
	return
}

func mean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(max(1, len(v)))
}

// topK returns the indices of the k largest values, largest first, ties by the lower index.
func topIndices(x []float32, k int) []int {
	idx := make([]int, len(x))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case x[a] > x[b]:
			return -1
		case x[a] < x[b]:
			return 1
		}
		return 0
	})
	return idx[:min(k, len(idx))]
}

func precisionMarkdown(w io.Writer, rep *precisionReport) error {
	fmt.Fprintf(w, "# bfloat16 against float32\n\nModel %s, %d images of %s, bfloat16 kernel %s.\n\n", rep.Model, rep.Images, rep.Source, rep.Kernel)
	fmt.Fprintf(w, "Logits: top-1 agreement %.2f%%, top-5 sets equal %.2f%%, top-5 overlap %.2f%%.\n\n", 100*rep.Top1Agreement, 100*rep.Top5Agreement, 100*rep.Top5Overlap)
	fmt.Fprintln(w, "Relative error ‖bf16 − f32‖/‖f32‖ pooled over images (worst image), cosine similarity (mean, worst), and the same for the mean over latents (the `*_mean` columns extract stores).")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| representation | rel. error | worst | cosine | worst | mean over latents: rel. error | cosine |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|")
	for _, l := range rep.Layers {
		fmt.Fprintf(w, "| %s | %.3g | %.3g | %.6f | %.6f | %s | %s |\n", l.Name, l.RelErr, l.RelErrMax, l.CosineMean, l.CosineMin,
			orDash(l.MeanRelErr, "%.3g", l.sumMF2 > 0), orDash(l.MeanCosine, "%.6f", l.sumMF2 > 0))
	}
	return nil
}

func orDash(v float64, format string, ok bool) string {
	if !ok {
		return "–"
	}
	return fmt.Sprintf(format, v)
}

func precisionPlot(w io.Writer, rep *precisionReport, random bool) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("bfloat16 products against float32: error by depth (%d images)", rep.Images)
	if random {
		p.Title.Text += ", random weights"
	}
	p.X.Label.Text = "depth: 0 = after the cross-attention, j = after self-attention application j, then decoder and logits"
	p.Y.Label.Text = "relative error ‖bf16 − f32‖ / ‖f32‖ (pooled over images)"
	full, meanPts := plotter.XYs{}, plotter.XYs{}
	for j, l := range rep.Layers {
		full = append(full, plotter.XY{X: float64(j), Y: l.RelErr})
		if l.sumMF2 > 0 {
			meanPts = append(meanPts, plotter.XY{X: float64(j), Y: l.MeanRelErr})
		}
	}
	a, err := plotter.NewLine(full)
	if err != nil {
		return err
	}
	b, err := plotter.NewLine(meanPts)
	if err != nil {
		return err
	}
	b.LineStyle.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(plotter.NewGrid(), a, b)
	p.Legend.Add("every latent (and decoder, logits)", a)
	p.Legend.Add("mean over latents", b)
	p.Legend.Top, p.Legend.Left = true, true
	p.Y.Min = 0
	wt, err := p.WriterTo(24*vg.Centimeter, 12*vg.Centimeter, "png")
	if err != nil {
		return err
	}
	_, err = wt.WriteTo(w)
	return err
}

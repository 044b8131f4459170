package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/core/preprocess"
	"github.com/perceiverkit/perceiver/internal/flagcheck"
	"github.com/perceiverkit/perceiver/internal/sgemm"
)

func init() {
	register("bench", "time the forward pass stage by stage", runBench)
}

func runBench(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench", "usage: probe bench (--model DIR | --random [--arch fourier|learned|conv|flow]) [--batch N] [--runs N] [--image PATH] [--backward]", stderr)
	var mf modelFlags
	mf.register(fs)
	precision := precisionFlag(fs)
	random := fs.Bool("random", false, "benchmark the full-size architecture with random weights (no model folder needed)")
	arch := fs.String("arch", "fourier", "with --random: the architecture, fourier, learned, conv or flow")
	batch := fs.Int("batch", 1, "images per forward pass")
	runs := fs.Int("runs", 3, "timed runs (after one warm-up run)")
	image := fs.String("image", "", "image to preprocess (default: a synthetic 640×480 photo-sized image, decoding not timed)")
	backward := fs.Bool("backward", false, "also time forward + backward (probe explain's pass: every attention map kept, gradients to the pixels and every attention map) and report the peak resident memory")
	if err := parseFlags(fs, args); err != nil {
		return errUsage
	}
	if *batch < 1 || *runs < 1 {
		return usageFault(fs, "--batch and --runs must be at least 1")
	}
	if fs.NArg() > 0 || (*random == (mf.model != "")) {
		return badUsage(fs, "model|random")
	}
	if err := flagcheck.Count("--runs", int64(*runs), maxRuns); err != nil {
		return err
	}
	m, err := mf.openOrRandom(*random, *arch, stderr)
	if err != nil {
		return err
	}
	defer m.Close()
	if err := applyPrecision(m, *precision, stderr); err != nil {
		return err
	}
	if err := checkBatch("--batch", *batch, m); err != nil {
		return err
	}

	// Preprocessing: decode (when an image is given) + crop + resize + normalise.
	prep := func() (*preprocess.Result, error) {
		if *image != "" {
			return m.Preprocessor.LoadImage(*image, mf.decodeOptions())
		}
		img := preprocess.NewRGB(640, 480)
		for i := range img.Pix {
			img.Pix[i] = uint8(i * 7 % 251)
		}
		return m.Preprocessor.Process(img)
	}
	res, err := prep()
	if err != nil {
		return err
	}
	px := make([]float32, 0, *batch*len(res.Pixels))
	for b := 0; b < *batch; b++ {
		px = append(px, res.Pixels...)
	}
	h, w := res.H, res.W
	forward := m.Forward
	if size, ok := m.TrainSize(); ok { // the optical flow model: a pair of frames of its training size
		h, w = size[0], size[1]
		prep, px, forward = benchFrames(h, w), nil, m.ForwardFrames
		if res, err = prep(); err != nil {
			return err
		}
		for b := 0; b < *batch; b++ {
			px = append(px, res.Pixels...)
		}
	}

	type sample struct{ prep, in, enc, lat, dec, total float64 }
	var samples []sample
	for r := 0; r <= *runs; r++ {
		t0 := time.Now()
		for b := 0; b < *batch; b++ {
			if _, err := prep(); err != nil {
				return err
			}
		}
		tp := time.Since(t0).Seconds()
		t1 := time.Now()
		out, err := forward(px, *batch, h, w, core.Trace{})
		if err != nil {
			return err
		}
		total := time.Since(t1).Seconds()
		if r == 0 {
			continue // warm-up: page-in of the weights, buffer growth
		}
		samples = append(samples, sample{tp, out.Timings.Input.Seconds(), out.Timings.Encoder.Seconds(), out.Timings.Latents.Seconds(), out.Timings.Decoder.Seconds(), total})
	}
	stat := func(get func(sample) float64) (lo, med float64) {
		v := make([]float64, len(samples))
		for i, s := range samples {
			v[i] = get(s) / float64(*batch)
		}
		slices.Sort(v)
		return v[0], median(v)
	}
	fmt.Fprintf(stdout, "model      %s\n", describeModel(m, *random, mf.model))
	fmt.Fprintf(stdout, "input      %d×%d, batch %d, %d runs (+1 warm-up)\n", h, w, *batch, *runs)
	kernel := sgemm.Kernel()
	if m.Options().Precision == core.BF16 {
		name, _ := core.BF16Kernel()
		kernel = name + " for the products by weights and in attention, " + kernel + " elsewhere"
	}
	fmt.Fprintf(stdout, "precision  %s\n", m.Options().Precision)
	fmt.Fprintf(stdout, "kernel     %s, %d threads, GOMAXPROCS %d, %s/%s\n", kernel, sgemm.Threads(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(stdout, "%-16s %10s %10s   (seconds per image)\n", "stage", "min", "median")
	for _, st := range []struct {
		name string
		get  func(sample) float64
	}{
		{"preprocess", func(s sample) float64 { return s.prep }},
		{"input stage", func(s sample) float64 { return s.in }},
		{"cross-attention", func(s sample) float64 { return s.enc }},
		{"latent stack", func(s sample) float64 { return s.lat }},
		{"decoder", func(s sample) float64 { return s.dec }},
		{"forward total", func(s sample) float64 { return s.total }},
	} {
		lo, med := stat(st.get)
		fmt.Fprintf(stdout, "%-16s %10.4f %10.4f\n", st.name, lo, med)
	}
	lo, med := stat(func(s sample) float64 { return s.total })
	flops, executed := m.FLOPs(h, w), m.ExecutedFLOPs(h, w)
	fmt.Fprintf(stdout, "throughput       %.3f images/s (median), %.1f GFLOPS best, %.1f GFLOPS median (%.1f GFLOPs per image as Hugging Face computes it)\n",
		1/med, flops/lo/1e9, flops/med/1e9, flops/1e9)
	if peak := sgemm.Peak(sgemm.Threads(), 200*time.Millisecond); peak > 0 {
		fmt.Fprintf(stdout, "peak             %.1f GFLOPS (%s FMA loop on %d threads); the kernels executed %.1f GFLOPs per image: %.0f%% of peak best, %.0f%% median\n",
			peak, sgemm.Kernel(), sgemm.Threads(), executed/1e9, 100*executed/lo/1e9/peak, 100*executed/med/1e9/peak)
	}
	if *backward {
		limitMemory() // as probe explain runs it
		return benchBackward(stdout, m, px, *batch, h, w, *runs)
	}
	return nil
}

// benchBackward times ForwardBackward as probe explain runs it for chefer and the gradient maps
// — what PyTorch does with output_attentions and autograd to the pixels and every attention map —
// each run right after a plain forward pass, so that both see the same load on a shared machine,
// and reports the ratio and the process's peak resident memory.
func benchBackward(stdout io.Writer, m *core.Model, px []float32, batch, h, w, runs int) error {
	tr := core.Trace{SelfAttentions: true, EncoderAttention: true, DecoderAttention: true}
	gt := core.GradTrace{Pixels: true, SelfAttentions: true, EncoderAttention: true, DecoderAttention: true}
	var fwd, both, ratio []float64
	for r := 0; r <= runs; r++ {
		t0 := time.Now()
		if _, err := m.Forward(px, batch, h, w, core.Trace{}); err != nil {
			return err
		}
		t1 := time.Now()
		if _, _, err := m.ForwardBackward(px, batch, h, w, tr, gt); err != nil {
			return err
		}
		if r > 0 {
			f, b := t1.Sub(t0).Seconds()/float64(batch), time.Since(t1).Seconds()/float64(batch)
			fwd, both, ratio = append(fwd, f), append(both, b), append(ratio, b/f)
		}
	}
	for _, v := range [][]float64{fwd, both, ratio} {
		slices.Sort(v)
	}
	fmt.Fprintf(stdout, "%-16s %10.4f %10.4f   (each run after a forward pass of %.4f s median: %.2f× it, median of the runs' ratios)\n",
		"forward+backward", both[0], median(both), median(fwd), median(ratio))
	if hwm := peakRSS(); hwm != "" {
		fmt.Fprintf(stdout, "peak RSS         %s\n", hwm)
	}
	return nil
}

// peakRSS is the process's peak resident set (VmHWM of /proc/self/status), or "" where there is none.
func peakRSS() string {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

func describeModel(m *core.Model, random bool, dir string) string {
	c := &m.Config
	kind := dir
	if random {
		kind = "full-size " + m.Weights.Input.Kind() + " architecture, random weights"
	}
	return fmt.Sprintf("%s (%s input stage, d_model %d, %d latents × %d, %d×%d self-attention layers, %d labels, %.1fM parameters)",
		kind, m.Weights.Input.Kind(), c.DModel, c.NumLatents, c.DLatents, c.NumBlocks, c.NumSelfAttendsPerBlock, c.NumLabels(), float64(m.Weights.NumParams())/1e6)
}

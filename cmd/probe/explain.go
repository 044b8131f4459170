package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/core/preprocess"
	"github.com/perceiverkit/perceiver/core/weights"
	"github.com/perceiverkit/perceiver/explain"
	"github.com/perceiverkit/perceiver/internal/flagcheck"
	"github.com/perceiverkit/perceiver/internal/outfile"
	"github.com/perceiverkit/perceiver/viz"
)

func init() {
	register("explain", "draw class-specific explanations of one image (Chefer relevance, gradient maps, integrated gradients, smoothgrad)", runExplain)
}

// defaultExplainMethods are the class-specific methods of issue 14, in the order drawn.
var defaultExplainMethods = []string{"chefer", "grad-rollout", "saliency", "input-x-gradient", "integrated-gradients", "smoothgrad"}

const explainHelp = `usage: probe explain (--model DIR | --random) --image PATH --out DIR [--target K|top1|LABEL] [--methods LIST] [flags]

Explains which parts of the image the model's logit for the target class rests on. y is the
target's logit; the maps (exact definitions in the README, section "explain"):
  chefer                Chefer et al.'s relevance through the latents (token grid)
  grad-rollout          rollout of the positive gradient-weighted attention (token grid)
  saliency              max over colour channels of |∂y/∂x| (pixel grid)
  input-x-gradient      Σ_c x·∂y/∂x, signed (pixel grid)
  integrated-gradients  Gauss–Legendre integrated gradients from --baseline, signed (pixel grid)
  smoothgrad            saliency averaged over --samples noisy copies (pixel grid)
  attnlrp, cp-lrp       relevance propagation (AttnLRP, CP-LRP): Σ_c x·ĝ from a modified backward
                        pass, signed (pixel grid); summary.json adds the conservation record and
                        each latent's relevance, METHOD-latents.png the most relevant latents'
                        encoder attention, --raw the tensors attnlrp_latents, cp_lrp_latents
and every other registered method (mean, decoder, rollout: class-agnostic attention maps).

Writes into --out, overwriting files of the same names: input.png, METHOD.png per method (signed
maps in a blue–white–red colour map centred on zero), summary.png (all maps side by side),
summary.json (target index, label, probability, per-method statistics) and, with --raw,
maps.safetensors (float32, one tensor per method named with _ for -, on its own grid: [rows, cols]).

flags:`

func runExplain(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("explain", explainHelp, stderr)
	var mf modelFlags
	mf.register(fs)
	random := fs.Bool("random", false, "use the full-size architecture of --arch with random weights (seed 1) instead of --model: shows the output format, not what a trained model relies on")
	arch := archFlag(fs)
	image := fs.String("image", "", "image file to explain")
	out := fs.String("out", "", "output folder, created if missing; files in it are overwritten")
	tf := targetVar(fs, "class to explain")
	methods := fs.String("methods", strings.Join(defaultExplainMethods, ","), "comma-separated methods, or all: "+strings.Join(explain.Names(), ", "))
	overlay := fs.Bool("overlay", false, "draw the maps over the image the model saw")
	alpha := fs.Float64("alpha", 0.6, "opacity of the map over the image with --overlay, in [0, 1]")
	raw := fs.Bool("raw", false, "also write the maps as float32 tensors to maps.safetensors")
	def := explain.DefaultOptions()
	steps := fs.Int("steps", def.Steps, "integrated gradients: Gauss–Legendre nodes")
	baseline := fs.String("baseline", def.Baseline, "integrated gradients: baseline, zero (pixel_values 0, the mean colour) or black")
	samples := fs.Int("samples", def.Samples, "smoothgrad: noisy samples")
	noise := fs.Float64("noise", def.Noise, "smoothgrad: noise σ as a fraction of the image's max − min")
	seed := fs.Uint64("seed", def.Seed, "smoothgrad: seed of the noise")
	window := fs.Int("window", def.Window, "occlusion: window side in pixels")
	stride := fs.Int("stride", def.Stride, "occlusion: step between windows in pixels")
	if err := parseFlags(fs, args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 || *image == "" || *out == "" || *random == (mf.model != "") {
		return badUsage(fs, "image", "out", "model|random")
	}
	if err := tf.check(); err != nil {
		return err
	}
	names, err := parseMethods(*methods)
	if err != nil {
		return err
	}
	if !(*alpha >= 0 && *alpha <= 1) {
		return fmt.Errorf("--alpha %g: must be in [0, 1]", *alpha)
	}
	opt := explain.Options{Steps: *steps, Baseline: *baseline, Samples: *samples, Noise: *noise, Seed: *seed, Window: *window, Stride: *stride}
	if err := checkExplainOptions(opt); err != nil {
		return err
	}
	if err := outfile.CheckAll(explainTargets(*out, names, *raw)...); err != nil {
		return err
	}
	limitMemory()
	m, source, err := mf.openOrRandomNamed(*random, *arch, stderr)
	if err != nil {
		return err
	}
	defer m.Close()
	img, err := m.Preprocessor.LoadImage(*image, mf.decodeOptions())
	if err != nil {
		return err
	}
	if err := checkExplainSizes(opt, len(img.Pixels)); err != nil {
		return err
	}
	fwd, err := m.Forward(img.Pixels, 1, img.H, img.W, core.Trace{})
	if err != nil {
		return fmt.Errorf("%s: %w", *image, err)
	}
	if err := checkFinite("logits", fwd.Logits); err != nil {
		return fmt.Errorf("%s: model %s: %w; nothing written", *image, source, err)
	}
	labels := m.Config.Labels()
	target, err := tf.resolve(labels, fwd.Logits)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fmt.Errorf("output folder: %w", err)
	}
	in := explain.Input{Model: m, Pixels: img.Pixels, H: img.H, W: img.W, Target: target}
	prob := core.Softmax(fwd.Logits)[target]
	fmt.Fprintf(stdout, "%s: explaining class %d (%s), logit %.4g, probability %.4g\n", *image, target, labels[target], fwd.Logits[target], prob)

	maps, err := computeExplanationsLog(in, opt, names, stderr)
	if err != nil {
		return fmt.Errorf("%s: %w", *image, err)
	}
	for _, mp := range maps { // every map and its notes, before any output
		if err := checkFinite(mp.Method+" map", mp.Values); err != nil {
			return fmt.Errorf("%s: model %s: %w; nothing written", *image, source, err)
		}
		for k, v := range mp.Notes {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("%s: model %s: the model gives a non-finite %s %s (%v); nothing written", *image, source, mp.Method, k, v)
			}
		}
	}
	for _, mp := range maps {
		if n := mp.Notes; n != nil && mp.Method == "integrated-gradients" {
			fmt.Fprintf(stdout, "integrated-gradients completeness: Σ attribution %.6g, y(x) − y(x′) %.6g (relative error %.2g)\n", n["sum"], n["delta"], n["completeness_error"])
		}
		if c := mp.Conservation; c != nil {
			fmt.Fprintf(stdout, "%s conservation: y %.6g = pixels %.6g + positions %.6g + latents %.6g + decoder query %.6g + absorbed (biases, softmaxes, GELUs) %.6g\n",
				mp.Method, c.Logit, c.Pixels, c.Positions, c.Latents, c.Query, c.Absorbed)
		}
	}
	sum := explainSummary{Image: *image, Model: source, Target: target, Label: labels[target], Logit: fwd.Logits[target], Probability: prob, Methods: map[string]methodStats{}}
	for _, mp := range maps {
		sum.Methods[mp.Method] = statsOf(mp)
	}
	meta := map[string]string{"producer": "perceiverkit probe explain", "model": source, "image": *image, "target": fmt.Sprint(target), "label": labels[target]}
	return writeExplanations(stdout, *out, img.Resized, img.H, img.W, maps, sum, *overlay, *alpha, *raw, meta)
}

// parseMethods splits the --methods list, "all" standing for every registered method.
func parseMethods(s string) ([]string, error) {
	var names []string
	for _, n := range strings.Split(s, ",") {
		n = strings.TrimSpace(n)
		switch {
		case n == "":
		case n == "all":
			for _, r := range explain.Names() {
				if !slices.Contains(names, r) {
					names = append(names, r)
				}
			}
		default:
			if _, ok := explain.Lookup(n); !ok {
				return nil, fmt.Errorf("--methods: unknown method %q; have %s", n, strings.Join(explain.Names(), ", "))
			}
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("--methods: no method named")
	}
	return names, nil
}

func checkExplainOptions(o explain.Options) error {
	switch {
	case o.Steps < 1:
		return fmt.Errorf("--steps %d: want at least 1", o.Steps)
	case o.Baseline != "zero" && o.Baseline != "black":
		return fmt.Errorf("--baseline %q: want zero or black", o.Baseline)
	case o.Samples < 1:
		return fmt.Errorf("--samples %d: want at least 1", o.Samples)
	case !(o.Noise >= 0) || math.IsInf(o.Noise, 0):
		return fmt.Errorf("--noise %g: want a fraction ≥ 0", o.Noise)
	case o.Window < 1 || o.Stride < 1:
		return fmt.Errorf("--window %d, --stride %d: want at least 1", o.Window, o.Stride)
	case o.Noise > 1000:
		return fmt.Errorf("--noise %g: want a fraction of the image's range, at most 1000", o.Noise)
	}
	for _, c := range []struct {
		flag     string
		v, limit int64
	}{{"--steps", int64(o.Steps), maxSteps}, {"--window", int64(o.Window), maxWindow}, {"--stride", int64(o.Stride), maxWindow}} {
		if err := flagcheck.Count(c.flag, c.v, c.limit); err != nil {
			return err
		}
	}
	return nil
}

// checkExplainSizes refuses --samples and --steps whose buffers for an image of n pixel values
// exceed the memory: smoothgrad holds every noisy copy at once, integrated gradients its nodes.
func checkExplainSizes(o explain.Options, n int) error {
	if err := flagcheck.Bytes("--samples", o.Samples, flagcheck.Mul(float64(o.Samples), float64(n), 4)); err != nil {
		return err
	}
	return flagcheck.Bytes("--steps", o.Steps, flagcheck.Mul(float64(o.Steps), 16))
}

// computeExplanations runs the methods in order; those one backward pass serves together
// (chefer, grad-rollout, saliency, input-x-gradient) share it.
func computeExplanations(in explain.Input, opt explain.Options, names []string) ([]explain.Map, error) {
	return computeExplanationsLog(in, opt, names, nil)
}

// computeExplanationsLog is computeExplanations saying on log (when not nil) which method runs
// and how long it took: on the full-size model a method takes minutes, and a silent command
// looks hung.
func computeExplanationsLog(in explain.Input, opt explain.Options, names []string, log io.Writer) ([]explain.Map, error) {
	begin := func(what string) time.Time {
		if log != nil {
			fmt.Fprintf(log, "probe explain: %s …\n", what)
		}
		return time.Now()
	}
	status := func(what string, start time.Time) {
		if log != nil {
			fmt.Fprintf(log, "probe explain: %s done in %s\n", what, time.Since(start).Round(100*time.Millisecond))
		}
	}
	var shared []string
	for _, n := range names {
		if explain.SharesBackward(n) {
			shared = append(shared, n)
		}
	}
	byName := map[string]explain.Map{}
	if len(shared) > 0 {
		start := begin(strings.Join(shared, ", ") + " (one backward pass)")
		maps, err := explain.GradientMaps(in, shared)
		if err != nil {
			return nil, err
		}
		status(strings.Join(shared, ", ")+" (one backward pass)", start)
		for _, mp := range maps {
			byName[mp.Method] = mp
		}
	}
	res := make([]explain.Map, 0, len(names))
	for _, n := range names {
		mp, ok := byName[n]
		if !ok {
			meth, _ := explain.Lookup(n)
			start := begin(n)
			var err error
			if mp, err = meth.Compute(in, opt); err != nil {
				return nil, fmt.Errorf("%s: %w", n, err)
			}
			status(n, start)
		}
		res = append(res, mp)
	}
	return res, nil
}

type explainSummary struct {
	Image       string                 `json:"image"`
	Model       string                 `json:"model"`
	Target      int                    `json:"target"`
	Label       string                 `json:"label"`
	Logit       float32                `json:"logit"`
	Probability float64                `json:"probability"`
	Methods     map[string]methodStats `json:"methods"`
}

type methodStats struct {
	Grid   string             `json:"grid"` // rows×cols
	Signed bool               `json:"signed"`
	Min    float64            `json:"min"`
	Max    float64            `json:"max"`
	Mean   float64            `json:"mean"`
	Sum    float64            `json:"sum"`
	Notes  map[string]float64 `json:"notes,omitempty"`

	// Relevance methods (attnlrp, cp-lrp): where the logit's relevance went, each latent's
	// relevance after the encoder cross-attention, and the most relevant latents.
	Conservation *explain.Conservation `json:"conservation,omitempty"`
	Latents      []float32             `json:"latents,omitempty"`
	TopLatents   []topLatent           `json:"top_latents,omitempty"`
}

type topLatent struct {
	Index     int     `json:"index"`
	Relevance float64 `json:"relevance"`
}

func statsOf(mp explain.Map) methodStats {
	s := methodStats{Grid: fmt.Sprintf("%d×%d", mp.Grid.Rows, mp.Grid.Cols), Signed: mp.Signed, Notes: mp.Notes,
		Conservation: mp.Conservation, Latents: mp.Latents}
	for _, t := range mp.TopLatents {
		s.TopLatents = append(s.TopLatents, topLatent{t.Index, t.Relevance})
	}
	s.Min, s.Max = viz.Range(mp.Values)
	for _, v := range mp.Values {
		s.Sum += float64(v)
	}
	s.Mean = s.Sum / float64(max(1, len(mp.Values)))
	return s
}

// onPixels returns a map's values on the pixel grid of the image.
func onPixels(mp explain.Map) []float32 {
	if mp.Grid.Pixel() {
		return mp.Values
	}
	px := make([]float32, mp.Grid.Height*mp.Grid.Width)
	mp.Grid.ToPixels(px, mp.Values)
	return px
}

// explainTargets are the files explain may write into dir, checked together before any work.
func explainTargets(dir string, names []string, raw bool) []string {
	t := []string{filepath.Join(dir, "input.png")}
	for _, n := range names {
		t = append(t, filepath.Join(dir, n+".png"))
	}
	t = append(t, filepath.Join(dir, "summary.png"), filepath.Join(dir, "summary.json"))
	if raw {
		t = append(t, filepath.Join(dir, "maps.safetensors"))
	}
	return t
}

// writeExplanations writes the figures, the summary and the raw maps into dir, printing each path.
func writeExplanations(stdout io.Writer, dir string, resized *preprocess.RGB, h, w int, maps []explain.Map, sum explainSummary, overlay bool, alpha float64, raw bool, meta map[string]string) error {
	names := make([]string, len(maps))
	for i, mp := range maps {
		names[i] = mp.Method
	}
	if err := outfile.CheckAll(explainTargets(dir, names, raw)...); err != nil { // again: time has passed
		return err
	}
	f := max(1, (minDisplay+max(h, w)-1)/max(h, w))
	var under *preprocess.RGB // the image the model saw, when it matches the map grid
	if resized != nil && resized.W == w && resized.H == h {
		under = resized
	}
	wrote := func(p string) { fmt.Fprintf(stdout, "wrote %s\n", p) }
	random := strings.HasPrefix(sum.Model, "random weights")
	tiles := []viz.Tile{}
	if under != nil {
		in := enlargeRGB(under, f)
		p := filepath.Join(dir, "input.png")
		if err := viz.SavePNG(p, in); err != nil {
			return err
		}
		wrote(p)
		tiles = append(tiles, viz.Tile{Image: in, Title: fmt.Sprintf("input: %d %s", sum.Target, sum.Label)})
	}
	var rawTensors []*weights.Tensor
	for _, mp := range maps {
		vals := onPixels(mp)
		lo, hi := viz.Range(vals)
		cm := viz.Colormap(viz.Viridis)
		if mp.Signed {
			lo, hi = viz.SymmetricRange(vals)
			cm = viz.Diverging
		}
		opt := viz.HeatmapOptions{Min: lo, Max: hi, Width: f * w, Height: f * h, Colormap: cm}
		pic := viz.Heatmap(vals, h, w, opt)
		if overlay && under != nil {
			pic = viz.Overlay(enlargeRGB(under, f), vals, h, w, alpha, opt)
		}
		tile := viz.Tile{Image: pic, Title: mp.Method}
		tiles = append(tiles, tile)
		p := filepath.Join(dir, mp.Method+".png")
		if err := viz.SaveFigure(p, headed(viz.Figure{Tiles: []viz.Tile{tile}, Scale: &viz.Scale{Min: lo, Max: hi, Colormap: cm}}, random)); err != nil {
			return err
		}
		wrote(p)
		rawTensors = append(rawTensors, &weights.Tensor{Name: strings.ReplaceAll(mp.Method, "-", "_"), DType: "F32", Shape: []int{mp.Grid.Rows, mp.Grid.Cols}, Data: mp.Values})
		if mp.Latents != nil {
			rawTensors = append(rawTensors, &weights.Tensor{Name: strings.ReplaceAll(mp.Method, "-", "_") + "_latents", DType: "F32", Shape: []int{len(mp.Latents)}, Data: mp.Latents})
		}
		if len(mp.TopLatents) > 0 {
			p := filepath.Join(dir, mp.Method+"-latents.png")
			if err := viz.SaveFigure(p, headed(topLatentsFigure(mp, f), random)); err != nil {
				return err
			}
			wrote(p)
		}
	}
	p := filepath.Join(dir, "summary.png")
	if err := viz.SaveFigure(p, headed(viz.Figure{Tiles: tiles, Cols: min(len(tiles), 4)}, random)); err != nil {
		return err
	}
	wrote(p)
	js, err := json.MarshalIndent(sum, "", "  ")
	if err != nil {
		return err
	}
	p = filepath.Join(dir, "summary.json")
	if err := outfile.WriteFile(p, append(js, '\n'), 0o644); err != nil {
		return err
	}
	wrote(p)
	if raw {
		p := filepath.Join(dir, "maps.safetensors")
		if err := weights.WriteSafetensors(p, rawTensors, meta); err != nil {
			return err
		}
		wrote(p)
	}
	return nil
}

// explainMemoryLimit is the Go heap's soft limit for the backward passes, unless GOMEMLIMIT sets
// one: a full-size pass holds about 1.9 GB live (core/doc.go), and each pass of integrated
// gradients or smoothgrad leaves as much garbage; without a limit the collector lets the heap grow
// to twice what was live at its last cycle before collecting, past the 3 GB the issue allows.
const explainMemoryLimit = 2560 << 20

func limitMemory() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(explainMemoryLimit)
	}
}

// topLatentsFigure draws the encoder cross-attention of a relevance map's most relevant latents
// on the pixel grid, each titled with its index and relevance, over one shared scale of attention
// probability.
func topLatentsFigure(mp explain.Map, f int) viz.Figure {
	g := mp.AttentionGrid
	h, w := g.Height, g.Width
	var hi float64
	pics := make([][]float32, len(mp.TopLatents))
	for i, t := range mp.TopLatents {
		pics[i] = make([]float32, h*w)
		g.ToPixels(pics[i], t.Attention)
		_, top := viz.Range(pics[i])
		hi = max(hi, top)
	}
	if hi <= 0 {
		hi = 1
	}
	var tiles []viz.Tile
	for i, t := range mp.TopLatents {
		opt := viz.HeatmapOptions{Min: 0, Max: hi, Width: f * w, Height: f * h, Colormap: viz.Colormap(viz.Viridis)}
		title := fmt.Sprintf("%s latent %d: R %.3g", mp.Method, t.Index, t.Relevance)
		if i > 0 {
			title = fmt.Sprintf("latent %d: R %.3g", t.Index, t.Relevance)
		}
		tiles = append(tiles, viz.Tile{Image: viz.Heatmap(pics[i], h, w, opt), Title: title})
	}
	return viz.Figure{Tiles: tiles, Cols: min(len(tiles), 4), Scale: &viz.Scale{Min: 0, Max: hi, Colormap: viz.Colormap(viz.Viridis)}}
}

// headed puts "random weights" above a figure of a model with random weights, as one title over
// the whole figure (a tile's own title is too narrow for it).
func headed(f viz.Figure, random bool) viz.Figure {
	if !random {
		return f
	}
	return viz.Figure{Tiles: []viz.Tile{{Image: f.Image(), Title: "random weights"}}}
}

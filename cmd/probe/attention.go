package main

import (
	"flag"
	"fmt"
	"image"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/perceiverkit/perceiver/attention"
	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/core/preprocess"
	"github.com/perceiverkit/perceiver/core/weights"
	"github.com/perceiverkit/perceiver/internal/outfile"
	"github.com/perceiverkit/perceiver/viz"
)

func init() {
	register("attention", "draw cross-attention heatmaps (latents, mean, decoder, rollout) of images", runAttention)
}

// The maps `probe attention` draws, in the order it writes them.
var attentionMapNames = []string{"latents", "mean", "decoder", "rollout"}

const attentionHelp = `usage: probe attention (--model DIR | --random) --out DIR [flags] (--image PATH | IMAGE...)

Draws where the model looks, from its encoder cross-attention C [latents, N] (the latents'
distributions over the model's N tokens: the H×W pixels as the model saw the image after crop
and resize for the Fourier and learned models; for conv a grid 4× coarser, whose token (i, j)
is drawn as the 4×4 cell centred at pixel (4i+2, 4j+2)):
  latents  latent l's row of C, one map per chosen latent (--latents), drawn as one montage
           on a shared colour scale
  mean     the mean of C over latents
  decoder  Σ_l d[l]·C[l,:], d the classification query's attention over the final latents
  rollout  Σ_l w[l]·C[l,:], w = d·R, R the attention rollout through the latent stack
           (product over applications of ½·I + ½·mean over heads, rows renormalised)

Writes into --out, overwriting files of the same names: input.png (the preprocessed image),
latents.FMT, mean.FMT, decoder.FMT, rollout.FMT and, with --raw, maps.safetensors (float32, on
the token grid R×C: latents [K,R,C] with their indices in the metadata, mean/decoder/rollout
[R,C], decoder_attention [L], rollout_weights [L]; the grid's geometry in the metadata). With several images each gets its own folder
--out/<file name without extension>. Images run one at a time: memory is one image's C
(103 MB at 224²) plus one latents×latents rollout product, never the self-attention maps.

flags:`

func runAttention(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("attention", attentionHelp, stderr)
	var mf modelFlags
	mf.register(fs)
	precision := precisionFlag(fs)
	random := fs.Bool("random", false, "use the full-size architecture with random weights (seed 1) instead of --model: shows the output format, not what a trained model attends to")
	arch := fs.String("arch", "fourier", "with --random: the architecture, fourier, learned or conv")
	var images stringList
	fs.Var(&images, "image", "image file (repeatable; images may also follow the flags)")
	out := fs.String("out", "", "output folder, created if missing; files in it are overwritten")
	mapList := fs.String("maps", "latents,mean,decoder,rollout", "comma-separated maps to draw: "+strings.Join(attentionMapNames, ", "))
	latentSpec := fs.String("latents", "top:8", "latents to draw: a list such as 3,17,200 (ranges 0-7 allowed), or top:K for the K the decoder attends to most")
	overlay := fs.Bool("overlay", false, "draw the maps over the preprocessed image")
	alpha := fs.Float64("alpha", 0.6, "opacity of the heatmap over the image with --overlay, in [0, 1]")
	raw := fs.Bool("raw", false, "also write the maps as float32 tensors to maps.safetensors")
	format := fs.String("format", "png", "figure format: "+strings.Join(viz.Formats, ", "))
	clip := fs.Float64("clip", 100, "top of the colour scale as a percentile of the map's values, in (0, 100]: e.g. 99.5 keeps a few hot pixels from darkening the rest (the colour bar shows the clipped scale)")
	if err := parseFlags(fs, args); err != nil {
		return errUsage
	}
	images = append(images, fs.Args()...)
	if len(images) == 0 {
		return usageFault(fs, "no image: give --image PATH or image files")
	}
	if *out == "" || *random == (mf.model != "") {
		return badUsage(fs, "args", "out", "model|random")
	}
	opt := attentionOptions{overlay: *overlay, alpha: *alpha, raw: *raw, format: strings.ToLower(*format), clip: *clip}
	var err error
	if opt.maps, err = parseMapNames(*mapList); err != nil {
		return err
	}
	if opt.maps["latents"] {
		if opt.latents, err = parseLatentSpec(*latentSpec); err != nil {
			return err
		}
	}
	if !slices.Contains(viz.Formats, opt.format) {
		return fmt.Errorf("--format %q: want one of %s", *format, strings.Join(viz.Formats, ", "))
	}
	if !(opt.alpha >= 0 && opt.alpha <= 1) {
		return fmt.Errorf("--alpha %g: must be in [0, 1]", opt.alpha)
	}
	if !(opt.clip > 0 && opt.clip <= 100) {
		return fmt.Errorf("--clip %g: must be a percentile in (0, 100]", opt.clip)
	}
	dirs, err := imageOutputDirs(*out, images)
	if err != nil {
		return err
	}
	var targets []string
	for _, d := range dirs {
		targets = append(targets, attentionTargets(d, opt)...)
	}
	if err := outfile.CheckAll(targets...); err != nil {
		return err
	}

	var m *core.Model
	source := mf.model
	if *random {
		m, err = randomFullSize(*arch, 1)
		source = "random weights (full-size " + *arch + " architecture, seed 1)"
	} else {
		m, err = mf.open(stderr)
	}
	if err != nil {
		return err
	}
	defer m.Close()
	if err := applyPrecision(m, *precision, stderr); err != nil {
		return err
	}
	latentsSet := false
	fs.Visit(func(f *flag.Flag) { latentsSet = latentsSet || f.Name == "latents" })
	if !latentsSet {
		// The default top:8 adapts to models with fewer latents; an explicit value does not.
		opt.latents.top = min(opt.latents.top, m.Config.NumLatents)
	}
	if err := opt.latents.check(m.Config.NumLatents); err != nil {
		return err
	}

	skips := preprocess.NewSkips(stderr)
	for i, path := range images {
		img, err := m.Preprocessor.LoadImage(path, mf.decodeOptions())
		if err != nil {
			skips.Add(path, err)
			continue
		}
		maps, err := computeAttentionMaps(m, img.Pixels, img.H, img.W, opt.maps)
		if err == nil {
			err = maps.checkFinite()
		}
		if err != nil {
			return fmt.Errorf("%s: model %s: %w", path, source, err)
		}
		if err := os.MkdirAll(dirs[i], 0o755); err != nil {
			return fmt.Errorf("output folder: %w", err)
		}
		meta := map[string]string{"producer": "perceiverkit probe attention", "model": source, "image": path}
		if err := writeAttentionOutputs(stdout, dirs[i], path, img.Resized, maps, opt, meta); err != nil {
			return err
		}
	}
	if n := skips.Count(); n > 0 {
		return fmt.Errorf("%d of %d images skipped (reasons above)", n, len(images))
	}
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

var _ flag.Value = (*stringList)(nil)

type attentionOptions struct {
	maps    map[string]bool
	latents latentSpec
	overlay bool
	alpha   float64
	raw     bool
	format  string
	clip    float64 // percentile of the values drawn as the top colour
}

// parseMapNames reads --maps: known names, comma-separated, at least one.
func parseMapNames(s string) (map[string]bool, error) {
	maps := map[string]bool{}
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if !slices.Contains(attentionMapNames, name) {
			return nil, fmt.Errorf("--maps: unknown map %q (want %s)", name, strings.Join(attentionMapNames, ", "))
		}
		maps[name] = true
	}
	if len(maps) == 0 {
		return nil, fmt.Errorf("--maps %q: name at least one of %s", s, strings.Join(attentionMapNames, ", "))
	}
	return maps, nil
}

// latentSpec is --latents: either the top K latents by decoder attention, or a list.
type latentSpec struct {
	top    int      // > 0: the top K
	ranges [][2]int // otherwise: these ranges lo-hi (inclusive), in this order
	list   []int    // the ranges' latents, set by check once their bounds are known good
}

func parseLatentSpec(s string) (latentSpec, error) {
	s = strings.TrimSpace(s)
	if k, ok := strings.CutPrefix(s, "top:"); ok {
		n, err := strconv.Atoi(k)
		if err != nil || n < 1 {
			return latentSpec{}, fmt.Errorf("--latents %q: top:K needs a whole number K ≥ 1", s)
		}
		return latentSpec{top: n}, nil
	}
	// Ranges stay ranges until check has bounded them by the model's latents: listing
	// 0-2000000000 first would exhaust memory before the range is found wrong.
	var ranges [][2]int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, errA := strconv.Atoi(lo)
		b, errB := a, error(nil)
		if isRange {
			b, errB = strconv.Atoi(hi)
		}
		if errA != nil || errB != nil || a < 0 || b < a {
			return latentSpec{}, fmt.Errorf("--latents %q: %q is not a latent index or range a-b (want e.g. 3,17,200 or 0-7 or top:8)", s, part)
		}
		ranges = append(ranges, [2]int{a, b})
	}
	return latentSpec{ranges: ranges}, nil
}

// check reports latents the model does not have, or listed twice, and lists the chosen latents.
func (s *latentSpec) check(latents int) error {
	if s.top > latents {
		return fmt.Errorf("--latents top:%d: the model has only %d latents", s.top, latents)
	}
	for _, r := range s.ranges {
		if r[1] >= latents {
			return fmt.Errorf("--latents: latent %d out of range (the model has latents 0-%d)", r[1], latents-1)
		}
	}
	s.list = s.list[:0]
	seen := make([]bool, latents)
	for _, r := range s.ranges {
		for l := r[0]; l <= r[1]; l++ {
			if seen[l] {
				return fmt.Errorf("--latents: latent %d listed twice", l)
			}
			seen[l] = true
			s.list = append(s.list, l)
		}
	}
	return nil
}

// pick returns the latents to draw, given the decoder's attention over latents.
func (s latentSpec) pick(decoder []float32) []int {
	if s.top > 0 {
		return attention.TopLatents(decoder, s.top)
	}
	return s.list
}

// imageOutputDirs gives each image its output folder: out itself for one image, out/<stem> for
// several. Two images with the same stem would overwrite each other, so that is an error.
func imageOutputDirs(out string, images []string) ([]string, error) {
	if len(images) == 1 {
		return []string{out}, nil
	}
	dirs := make([]string, len(images))
	owner := map[string]string{}
	for i, path := range images {
		stem := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
		if prev, dup := owner[stem]; dup {
			return nil, fmt.Errorf("images %s and %s would both write to %s: run them separately", prev, path, filepath.Join(out, stem))
		}
		owner[stem] = path
		dirs[i] = filepath.Join(out, stem)
	}
	return dirs, nil
}

// attentionMaps are one image's maps, each row-major over the model's token grid (the H×W pixels
// for the Fourier and learned models, the 4×-pooled grid for conv).
type attentionMaps struct {
	H, W, Latents int            // the image the model saw, and L
	Grid          core.TokenGrid // the tokens on it: N = Grid.Tokens()
	Cross         []float32      // [L, N]: the encoder cross-attention, averaged over its heads
	Decoder       []float32      // [L]: the decoder's attention over the final latents, averaged over heads
	Mean          []float32      // [N], when asked for
	DecoderMap    []float32      // [N], when asked for
	Rollout       []float32      // [N], when asked for
	RolloutW      []float32      // [L]: d·R, the rollout's weights on the latents leaving the encoder
}

// computeAttentionMaps runs the model on one image's pixels [3, h, w] and reduces its attention
// to the maps wanted. The rollout is folded in as each self-attention application is computed,
// so the self-attention maps are never held together.
func computeAttentionMaps(m *core.Model, pixels []float32, h, w int, want map[string]bool) (*attentionMaps, error) {
	L := m.Config.NumLatents
	heads := m.Config.NumSelfAttentionHeads
	var roll *attention.Rollout
	trace := core.Trace{EncoderAttention: true, DecoderAttention: true}
	if want["rollout"] {
		roll = attention.NewRollout(1, L)
		trace.OnSelfAttention = func(_, _ int, probs []float32) { roll.Add(probs, heads) }
	}
	out, err := m.Forward(pixels, 1, h, w, trace)
	if err != nil {
		return nil, err
	}
	n := out.Grid.Tokens()
	if out.Latents != L || len(out.EncoderAttention) != out.CrossHeads*L*n || len(out.DecoderAttention)%L != 0 {
		return nil, fmt.Errorf("forward pass returned attention of unexpected shape: encoder %d values for %d heads × %d latents × %d tokens, decoder %d values",
			len(out.EncoderAttention), out.CrossHeads, L, n, len(out.DecoderAttention))
	}
	if roll != nil && roll.Applications() != m.Config.NumSelfAttentionApplications() {
		return nil, fmt.Errorf("rollout saw %d self-attention applications, the model has %d", roll.Applications(), m.Config.NumSelfAttentionApplications())
	}
	r := &attentionMaps{H: h, W: w, Latents: L, Grid: out.Grid, Cross: out.EncoderAttention, Decoder: out.DecoderAttention}
	if out.CrossHeads > 1 {
		r.Cross = make([]float32, L*n)
		attention.MeanHeads(r.Cross, out.EncoderAttention, out.CrossHeads, L, n)
	}
	if dh := len(out.DecoderAttention) / L; dh > 1 {
		r.Decoder = make([]float32, L)
		attention.MeanHeads(r.Decoder, out.DecoderAttention, dh, 1, L)
	}
	if want["mean"] {
		r.Mean = make([]float32, n)
		attention.MeanMap(r.Mean, r.Cross, L, n)
	}
	if want["decoder"] {
		r.DecoderMap = make([]float32, n)
		attention.WeightedMap(r.DecoderMap, r.Decoder, r.Cross, L, n)
	}
	if roll != nil {
		r.RolloutW = make([]float32, L)
		roll.LatentWeights(r.RolloutW, 0, r.Decoder)
		r.Rollout = make([]float32, n)
		attention.WeightedMap(r.Rollout, r.RolloutW, r.Cross, L, n)
	}
	return r, nil
}

// checkFinite refuses maps holding NaN or ±Inf, before anything is drawn or written.
func (r *attentionMaps) checkFinite() error {
	for _, m := range []struct {
		name string
		v    []float32
	}{{"encoder cross-attention", r.Cross}, {"decoder attention", r.Decoder}, {"rollout weights", r.RolloutW}} {
		if err := checkFinite(m.name, m.v); err != nil {
			return err
		}
	}
	return nil
}

// minDisplay is the smallest long side, in pixels, a map is drawn at: small inputs (tests' tiny
// models) are enlarged by a whole factor so that cells stay square and crisp.
const minDisplay = 224

// renderer draws maps at one display size, optionally over the image the model saw. Maps over a
// token grid coarser than the pixels are drawn with the grid's geometry: each token fills its cell.
type renderer struct {
	h, w          int // the image's pixel grid
	grid          core.TokenGrid
	width, height int // display size
	base          image.Image
	alpha         float64
}

func newRenderer(grid core.TokenGrid, resized *preprocess.RGB, overlay bool, alpha float64) (*renderer, error) {
	h, w := grid.Height, grid.Width
	f := max(1, (minDisplay+max(h, w)-1)/max(h, w))
	r := &renderer{h: h, w: w, grid: grid, width: f * w, height: f * h, alpha: alpha}
	if overlay {
		if resized == nil || resized.W != w || resized.H != h {
			return nil, fmt.Errorf("the preprocessed image does not match the %d×%d map grid", h, w)
		}
		r.base = enlargeRGB(resized, f)
	}
	return r, nil
}

// enlargeRGB converts img to an image.RGBA f times larger (nearest neighbour).
func enlargeRGB(img *preprocess.RGB, f int) *image.RGBA {
	dst := image.NewRGBA(image.Rect(0, 0, img.W*f, img.H*f))
	for y := range img.H * f {
		for x := range img.W * f {
			r, g, b := img.At(x/f, y/f)
			i := dst.PixOffset(x, y)
			dst.Pix[i], dst.Pix[i+1], dst.Pix[i+2], dst.Pix[i+3] = r, g, b, 255
		}
	}
	return dst
}

// draw returns map m (over the token grid) drawn over [lo, hi].
func (r *renderer) draw(m []float32, lo, hi float64) image.Image {
	opt := viz.HeatmapOptions{Min: lo, Max: hi, Width: r.width, Height: r.height}
	if !r.grid.Pixel() {
		px := make([]float32, r.h*r.w)
		r.grid.ToPixels(px, m)
		m = px
	}
	if r.base != nil {
		return viz.Overlay(r.base, m, r.h, r.w, r.alpha, opt)
	}
	return viz.Heatmap(m, r.h, r.w, opt)
}

// attentionTargets are the files attention may write into one image's folder, checked together
// before any work.
func attentionTargets(dir string, opt attentionOptions) []string {
	t := []string{filepath.Join(dir, "input.png")}
	for _, name := range attentionMapNames {
		if opt.maps[name] {
			t = append(t, filepath.Join(dir, name+"."+opt.format))
		}
	}
	if opt.raw {
		t = append(t, filepath.Join(dir, "maps.safetensors"))
	}
	return t
}

// writeAttentionOutputs writes one image's figures (and raw tensors) into dir, printing each path.
func writeAttentionOutputs(stdout io.Writer, dir, imagePath string, resized *preprocess.RGB, maps *attentionMaps, opt attentionOptions, meta map[string]string) error {
	if err := outfile.CheckAll(attentionTargets(dir, opt)...); err != nil { // again: time has passed
		return err
	}
	rd, err := newRenderer(maps.Grid, resized, opt.overlay, opt.alpha)
	if err != nil {
		return fmt.Errorf("%s: %w", imagePath, err)
	}
	top := attention.TopLatents(maps.Decoder, 5)
	parts := make([]string, len(top))
	for i, l := range top {
		parts[i] = fmt.Sprintf("%d (%.3g)", l, maps.Decoder[l])
	}
	fmt.Fprintf(stdout, "%s: latents the decoder attends to most: %s\n", imagePath, strings.Join(parts, ", "))

	wrote := func(path string) { fmt.Fprintf(stdout, "wrote %s\n", path) }
	if resized != nil {
		p := filepath.Join(dir, "input.png")
		if err := viz.SavePNG(p, enlargeRGB(resized, rd.width/maps.W)); err != nil {
			return err
		}
		wrote(p)
	}
	g := maps.Grid
	n := g.Tokens()
	meta["grid"] = g.String()
	meta["grid_rows"], meta["grid_cols"] = strconv.Itoa(g.Rows), strconv.Itoa(g.Cols)
	meta["grid_stride"], meta["grid_offset"] = strconv.Itoa(g.Stride), strconv.Itoa(g.Offset)
	meta["image_height"], meta["image_width"] = strconv.Itoa(g.Height), strconv.Itoa(g.Width)
	var raw []*weights.Tensor
	save := func(name string, tiles []viz.Tile, cols int, lo, hi float64) error {
		p := filepath.Join(dir, name+"."+opt.format)
		fig := viz.Figure{Tiles: tiles, Cols: cols, Scale: &viz.Scale{Min: lo, Max: hi}}
		if err := viz.SaveFigure(p, fig); err != nil {
			return err
		}
		wrote(p)
		return nil
	}
	if opt.maps["latents"] {
		chosen := opt.latents.pick(maps.Decoder)
		rows := make([]float32, len(chosen)*n)
		for i, l := range chosen {
			attention.LatentMap(rows[i*n:(i+1)*n], maps.Cross, l, n)
		}
		lo, hi := colourRange(rows, opt.clip)
		tiles := make([]viz.Tile, len(chosen))
		for i, l := range chosen {
			tiles[i] = viz.Tile{Image: rd.draw(rows[i*n:(i+1)*n], lo, hi), Title: fmt.Sprintf("latent %d  d=%.3g", l, maps.Decoder[l])}
		}
		cols := int(math.Ceil(math.Sqrt(float64(len(chosen)))))
		if err := save("latents", tiles, cols, lo, hi); err != nil {
			return err
		}
		idx := make([]string, len(chosen))
		for i, l := range chosen {
			idx[i] = strconv.Itoa(l)
		}
		meta["latents"] = strings.Join(idx, ",")
		raw = append(raw, &weights.Tensor{Name: "latents", DType: "F32", Shape: []int{len(chosen), g.Rows, g.Cols}, Data: rows})
	}
	single := []struct {
		name, title string
		m           []float32
	}{
		{"mean", "mean over latents", maps.Mean},
		{"decoder", "decoder-weighted latents", maps.DecoderMap},
		{"rollout", "attention rollout", maps.Rollout},
	}
	for _, s := range single {
		if s.m == nil {
			continue
		}
		lo, hi := colourRange(s.m, opt.clip)
		if err := save(s.name, []viz.Tile{{Image: rd.draw(s.m, lo, hi), Title: s.title}}, 1, lo, hi); err != nil {
			return err
		}
		raw = append(raw, &weights.Tensor{Name: s.name, DType: "F32", Shape: []int{g.Rows, g.Cols}, Data: s.m})
	}
	if !opt.raw {
		return nil
	}
	raw = append(raw, &weights.Tensor{Name: "decoder_attention", DType: "F32", Shape: []int{maps.Latents}, Data: maps.Decoder})
	if maps.RolloutW != nil {
		raw = append(raw, &weights.Tensor{Name: "rollout_weights", DType: "F32", Shape: []int{maps.Latents}, Data: maps.RolloutW})
	}
	p := filepath.Join(dir, "maps.safetensors")
	if err := weights.WriteSafetensors(p, raw, meta); err != nil {
		return err
	}
	wrote(p)
	return nil
}

// colourRange returns the values drawn as the bottom and top colours: the smallest finite value
// and the clip-th percentile (nearest rank) of the finite values; clip = 100 gives viz.Range.
func colourRange(m []float32, clip float64) (lo, hi float64) {
	lo, hi = viz.Range(m)
	if clip >= 100 {
		return lo, hi
	}
	finite := make([]float32, 0, len(m))
	for _, v := range m {
		if f := float64(v); !math.IsNaN(f) && !math.IsInf(f, 0) {
			finite = append(finite, v)
		}
	}
	if len(finite) == 0 {
		return lo, hi
	}
	slices.Sort(finite)
	rank := int(math.Ceil(clip/100*float64(len(finite)))) - 1
	return lo, float64(finite[max(0, rank)])
}

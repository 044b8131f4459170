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

	"github.com/perceiverkit/perceiver/ablation"
	"github.com/perceiverkit/perceiver/attention"
	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/core/preprocess"
	"github.com/perceiverkit/perceiver/internal/outfile"
	"github.com/perceiverkit/perceiver/internal/progress"
	"github.com/perceiverkit/perceiver/probe"
	"github.com/perceiverkit/perceiver/viz"
)

func init() {
	register("ablate", "knock out latents after the encoder cross-attention and measure the change of a class logit", runAblate)
}

const ablateHelp = `usage: probe ablate (--model DIR | --random) --image PATH --out DIR [--target K] [--latents all|top:K|LIST]
                   [--mode zero|mean --data SOURCE] [flags]

For each chosen latent l, replaces latent l after the encoder cross-attention (hidden state 0) by
zeros, or by its mean over --data (--mode mean), runs the latent stack and the decoder, and records
Δl = y(x) − y_ablated(x), y the target logit (default: the prediction). The encoder runs once;
ablations go through the latent stack --batch at a time.

Writes into --out: ablation.json (Δ per latent, with the decoder's attention on it),
ablation.png (Δ ranked, a bar chart) and latents.FMT (the encoder cross-attention maps of the
--montage latents with the largest Δ, titled with their Δ).

flags:`

func runAblate(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ablate", ablateHelp, stderr)
	var mf modelFlags
	mf.register(fs)
	random := fs.Bool("random", false, "use the full-size architecture with random weights (seed 1) instead of --model")
	arch := archFlag(fs)
	imagePath := fs.String("image", "", "image file")
	target := targetVar(fs, "class whose logit is measured")
	latentFlag := fs.String("latents", "all", "latents to ablate: all, top:K (the K the decoder attends to most), or a list such as 3,17,200 (ranges 0-7 allowed)")
	mode := fs.String("mode", "zero", "what replaces a latent: zero, or mean (its mean over --data)")
	var sf sourceFlags
	sf.register(fs)
	data := fs.String("data", "", "with --mode mean: the data set the means are taken over: "+dataUsage)
	limit := fs.Int("limit", 0, "with --mode mean: use only the first N images of --data (0: all)")
	batch := fs.Int("batch", 8, "ablations (or images, for the means) per pass")
	montage := fs.Int("montage", 8, "how many of the latents with the largest Δ to draw")
	overlay := fs.Bool("overlay", false, "draw the maps over the preprocessed image")
	format := fs.String("format", "png", "montage format: "+strings.Join(viz.Formats, ", "))
	out := fs.String("out", "", "output folder, created if missing; files in it are overwritten")
	quiet := fs.Bool("quiet", false, "no progress bar")
	if err := parseFlags(fs, args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 || *imagePath == "" || *out == "" || *random == (mf.model != "") {
		return badUsage(fs, "image", "out", "model|random")
	}
	if err := target.check(); err != nil {
		return err
	}
	if *mode != "zero" && *mode != "mean" {
		return fmt.Errorf("--mode %q: want zero or mean", *mode)
	}
	if (*mode == "mean") != (*data != "") {
		return fmt.Errorf("--data is needed with --mode mean, and only then")
	}
	if *batch < 1 || *montage < 0 || *limit < 0 {
		return fmt.Errorf("--batch must be positive, --montage and --limit not negative")
	}
	*format = strings.ToLower(*format)
	if !slices.Contains(viz.Formats, *format) {
		return fmt.Errorf("--format %q: want one of %s", *format, strings.Join(viz.Formats, ", "))
	}
	var spec latentSpec
	all := strings.TrimSpace(*latentFlag) == "all"
	if !all {
		var err error
		if spec, err = parseLatentSpec(*latentFlag); err != nil {
			return err
		}
	}
	// Every output is checked before any work (no partial sets, nothing written through a link).
	targets := []string{filepath.Join(*out, "ablation.json"), filepath.Join(*out, "ablation.png")}
	if *montage > 0 {
		targets = append(targets, filepath.Join(*out, "latents."+*format))
	}
	if err := outfile.CheckAll(targets...); err != nil {
		return err
	}
	var src probe.Source
	if *data != "" {
		var err error
		if src, err = sf.open(*data); err != nil {
			return err
		}
	}
	m, modelName, err := mf.openOrRandomNamed(*random, *arch, stderr)
	if err != nil {
		return err
	}
	defer m.Close()
	L := m.Config.NumLatents
	if err := spec.check(L); err != nil {
		return err
	}
	img, err := m.Preprocessor.LoadImage(*imagePath, mf.decodeOptions())
	if err != nil {
		return fmt.Errorf("%s: %w", *imagePath, err)
	}
	enc, err := m.Encode(img.Pixels, 1, img.H, img.W, core.Trace{EncoderAttention: true})
	if err != nil {
		return err
	}
	hidden := enc.HiddenStates[0]
	plain, err := m.ForwardLatents(hidden, 1, core.Trace{DecoderAttention: true})
	if err != nil {
		return err
	}
	targetIndex, err := target.resolve(m.Config.Labels(), plain.Logits)
	if err != nil {
		return err
	}
	decoder := plain.DecoderAttention
	if dh := len(decoder) / L; dh > 1 {
		decoder = make([]float32, L)
		attention.MeanHeads(decoder, plain.DecoderAttention, dh, 1, L)
	}
	var latents []int
	if all {
		for l := range L {
			latents = append(latents, l)
		}
	} else {
		latents = spec.pick(decoder)
	}

	opt := ablation.Options{Batch: *batch, Logits: plain.Logits}
	meanImages, meanSkipped := 0, 0
	if src != nil {
		if opt.Replacement, meanImages, meanSkipped, err = latentMeans(m, src, *limit, *batch, mf.decodeOptions(), stderr, *quiet); err != nil {
			return err
		}
	}
	res, err := ablation.Latents(m, hidden, targetIndex, latents, opt)
	if err != nil {
		return err
	}
	// Every number that reaches ablation.json or a figure is checked first, naming what overflowed.
	deltas := make([]float32, len(res.Delta))
	for i, d := range res.Delta {
		deltas[i] = float32(d)
	}
	for _, c := range []struct {
		what string
		v    []float32
	}{{"logits", plain.Logits}, {"Δ (ablated logits)", deltas}, {"decoder attention", decoder}} {
		if err := checkFinite(c.what, c.v); err != nil {
			return fmt.Errorf("%s: model %s: %w; nothing written", *imagePath, modelName, err)
		}
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fmt.Errorf("output folder: %w", err)
	}
	label := m.Config.Labels()[res.Target]
	type entry struct {
		Latent  int     `json:"latent"`
		Delta   float64 `json:"delta"`
		Rank    int     `json:"rank"` // 1: the largest Δ
		Ablated float64 `json:"ablated_logit"`
		Decoder float32 `json:"decoder_attention"`
	}
	ranked := res.Ranked()
	rankOf := make([]int, len(ranked))
	for r, i := range ranked {
		rankOf[i] = r + 1
	}
	entries := make([]entry, len(latents))
	for i, l := range latents {
		entries[i] = entry{Latent: l, Delta: res.Delta[i], Rank: rankOf[i], Ablated: res.Logit - res.Delta[i], Decoder: decoder[l]}
	}
	doc := map[string]any{
		"model": modelName, "image": *imagePath, "target": res.Target, "label": label, "logit": res.Logit,
		"mode": *mode, "latents": entries, "definition": "delta = y(x) − y(x with the latent replaced after the encoder cross-attention), y the target logit",
	}
	if src != nil {
		doc["mean"] = map[string]any{"source": src.Name(), "images": meanImages, "skipped": meanSkipped}
	}
	js, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	wrote := func(p string) { fmt.Fprintf(stdout, "wrote %s\n", p) }
	p := filepath.Join(*out, "ablation.json")
	if err := outfile.WriteFile(p, append(js, '\n'), 0o644); err != nil {
		return err
	}
	wrote(p)
	p = filepath.Join(*out, "ablation.png")
	title := fmt.Sprintf("%s: target %s (%d), logit %.4g, latents set to %s", filepath.Base(*imagePath), label, res.Target, res.Logit, map[string]string{"zero": "0", "mean": "their mean"}[*mode])
	if err := ablation.PlotDeltas(p, res, title); err != nil {
		return err
	}
	wrote(p)
	if k := min(*montage, len(ranked)); k > 0 {
		p = filepath.Join(*out, "latents."+*format)
		if err := ablationMontage(p, enc, img, res, ranked[:k], *overlay); err != nil {
			return err
		}
		wrote(p)
	}
	parts := make([]string, 0, 5)
	for _, i := range ranked[:min(5, len(ranked))] {
		parts = append(parts, fmt.Sprintf("%d (Δ %.4g)", res.Latents[i], res.Delta[i]))
	}
	fmt.Fprintf(stdout, "%s: target %s (%d), logit %.4g; largest Δ: %s\n", *imagePath, label, res.Target, res.Logit, strings.Join(parts, ", "))
	return nil
}

// latentMeans averages hidden state 0 over the first limit images of src (all when 0), running
// the encoder only; bad images are skipped and counted.
func latentMeans(m *core.Model, src probe.Source, limit, batch int, opt preprocess.Options, stderr io.Writer, quiet bool) ([]float32, int, int, error) {
	n := src.Len()
	if limit > 0 {
		n = min(n, limit)
	}
	var barOut io.Writer = stderr
	if quiet {
		barOut = nil
	}
	bar := progress.New(barOut, int64(n), "means", progress.Unit("img"))
	defer bar.Finish()
	skips := preprocess.NewSkips(stderr)
	var acc ablation.Mean
	size := m.Config.NumLatents * m.Config.DLatents
	var px []float32
	count, h, w := 0, 0, 0
	flush := func() error {
		if count == 0 {
			return nil
		}
		enc, err := m.Encode(px, count, h, w, core.Trace{})
		if err != nil {
			return err
		}
		if err := acc.Add(enc.HiddenStates[0], size); err != nil {
			return err
		}
		bar.Add(int64(count))
		px, count = px[:0], 0
		return nil
	}
	for it, err := range src.Stream(indexRange(n)) {
		if err != nil {
			return nil, 0, 0, err
		}
		img, err := loadItem(m, it, opt)
		if err != nil {
			skips.Add(it.ID, err)
			bar.Add(1)
			continue
		}
		if count > 0 && (img.H != h || img.W != w) {
			if err := flush(); err != nil {
				return nil, 0, 0, err
			}
		}
		h, w = img.H, img.W
		px = append(px, img.Pixels...)
		count++
		if count == batch {
			if err := flush(); err != nil {
				return nil, 0, 0, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, 0, 0, err
	}
	mean, err := acc.Value()
	if err != nil {
		return nil, 0, skips.Count(), fmt.Errorf("--data: no image could be read (%d skipped)", skips.Count())
	}
	return mean, acc.Count(), skips.Count(), nil
}

// ablationMontage draws the encoder cross-attention maps of the chosen latents (positions in
// res.Latents), on the pixel grid, titled with their Δ and on one colour scale.
func ablationMontage(path string, enc *core.Output, img *preprocess.Result, res *ablation.Result, chosen []int, overlay bool) error {
	L, N := enc.Latents, enc.Grid.Tokens()
	cross := enc.EncoderAttention
	if enc.CrossHeads > 1 {
		cross = make([]float32, L*N)
		attention.MeanHeads(cross, enc.EncoderAttention, enc.CrossHeads, L, N)
	}
	h, w := img.H, img.W
	n := h * w
	rows := make([]float32, len(chosen)*n)
	tok := make([]float32, N)
	for i, j := range chosen {
		attention.LatentMap(tok, cross, res.Latents[j], N)
		enc.Grid.ToPixels(rows[i*n:(i+1)*n], tok)
	}
	rd, err := newRenderer(core.TokenGrid{Rows: h, Cols: w, Height: h, Width: w, Stride: 1}, img.Resized, overlay, 0.6)
	if err != nil {
		return err
	}
	lo, hi := colourRange(rows, 100)
	tiles := make([]viz.Tile, len(chosen))
	for i, j := range chosen {
		tiles[i] = viz.Tile{Image: rd.draw(rows[i*n:(i+1)*n], lo, hi), Title: fmt.Sprintf("latent %d  delta=%.3g", res.Latents[j], res.Delta[j])}
	}
	cols := int(math.Ceil(math.Sqrt(float64(len(chosen)))))
	return viz.SaveFigure(path, viz.Figure{Tiles: tiles, Cols: cols, Scale: &viz.Scale{Min: lo, Max: hi}})
}

package main

import (
	"encoding/json"
	"fmt"
	"image"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/core/preprocess"
	"github.com/perceiverkit/perceiver/internal/outfile"
	"github.com/perceiverkit/perceiver/probe"
	"github.com/perceiverkit/perceiver/sae"
	"github.com/perceiverkit/perceiver/serve"
	"github.com/perceiverkit/perceiver/viz"
)

// featuresFile is features.json of probe sae features.
type featuresFile struct {
	SAE           string          `json:"sae"`
	Data          string          `json:"data"`
	Tokens        bool            `json:"tokens"`
	Layer         string          `json:"layer,omitempty"`
	K             int             `json:"k"`
	Dict          int             `json:"dict"`
	Samples       int             `json:"samples"`
	FVU           float64         `json:"fvu"`
	Dead          int             `json:"dead"`
	RandomWeights bool            `json:"random_weights"`
	Heatmaps      string          `json:"heatmaps"`
	Features      []featureRecord `json:"features"` // by frequency, most frequent first
}

type featureRecord struct {
	Index     int             `json:"index"`
	Frequency float64         `json:"frequency"`
	MeanValue float64         `json:"mean_activation"`
	Montage   string          `json:"montage,omitempty"`
	Top       []exampleRecord `json:"top"`
}

type exampleRecord struct {
	ID     string  `json:"id"`
	Latent int     `json:"latent"` // -1 for a Parquet column
	Value  float32 `json:"value"`
	Image  string  `json:"image,omitempty"` // the tile's PNG (image, or heatmap over it)
}

func runSAEFeatures(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sae features", "usage: probe sae features --sae DIR [--features F.parquet --column C | --tokens F.tokens/NAME] [--out DIR/features] [--top 9] [--montages N] [--force]", stderr)
	dir := fs.String("sae", "", "folder written by probe sae train")
	features := fs.String("features", "", "Parquet file to read (default: the training data)")
	allowMixed := allowMixedFlag(fs)
	column := fs.String("column", "", "its column (default: the trained one)")
	tokens := fs.String("tokens", "", "token store to read (default: the training data)")
	out := fs.String("out", "", "output folder (default: DIR/features)")
	top := fs.Int("top", 9, "top-activating examples kept per dictionary entry")
	montages := fs.Int("montages", 64, "draw montages of the N most frequent entries (0: every entry that fires)")
	alpha := fs.Float64("alpha", 0.6, "heatmap opacity over the image")
	force := fs.Bool("force", false, "replace an existing output folder's files")
	if err := parseFlags(fs, args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 || *dir == "" {
		return badUsage(fs, "sae")
	}
	if *top < 1 || *top > 1000 || *montages < 0 || !(*alpha >= 0 && *alpha <= 1) {
		return fmt.Errorf("--top must be 1…1000, --montages ≥ 0, --alpha in [0, 1]")
	}
	if *out == "" {
		*out = filepath.Join(*dir, "features")
	}
	s, rep, err := loadSAE(*dir)
	if err != nil {
		return err
	}
	f, c, t := saeDataFlags(rep, *features, *column, *tokens)
	in, err := openSAEInput(f, c, t, *allowMixed, stderr)
	if err != nil {
		return err
	}
	defer in.close()
	if in.data.Dim() != s.D {
		return fmt.Errorf("%s has %d channels, the autoencoder takes %d", in.desc, in.data.Dim(), s.D)
	}
	if st, err := os.Lstat(*out); err == nil {
		if !st.IsDir() {
			return fmt.Errorf("%s exists and is not a folder", *out)
		}
		if !*force {
			return fmt.Errorf("%s already exists; use --force to replace its files or another --out", *out)
		}
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}

	sum := sae.Summarize(s, in.data, *top)
	ff := &featuresFile{SAE: *dir, Data: in.desc, Tokens: in.tokens != nil, K: s.K, Dict: s.M, Samples: len(sum.L0), FVU: sum.FVU}
	if in.tokens != nil {
		ff.Layer = in.tokens.Meta.Layer
	}
	// Images: from the model and source the data came from.
	imgs, err := openFeatureImages(in)
	if err != nil {
		fmt.Fprintf(stderr, "probe sae features: drawing without images: %v\n", err)
	}
	if imgs != nil {
		defer imgs.close()
		ff.RandomWeights = imgs.random
		if in.tokens != nil {
			ff.Heatmaps = "activation × the latent's encoder cross-attention (mean over heads), drawn on the pixels through the token grid"
		}
	}
	byFreq := sum.ByFrequency()
	for _, ft := range byFreq {
		if ft.Frequency == 0 {
			ff.Dead++
		}
	}
	drawn := 0
	for _, ft := range byFreq {
		rec := featureRecord{Index: ft.Index, Frequency: ft.Frequency, MeanValue: ft.MeanValue, Top: []exampleRecord{}}
		for _, ex := range ft.Top {
			er := exampleRecord{ID: in.data.UnitID(ex.Unit), Latent: -1, Value: ex.Value}
			if in.tokens != nil {
				er.Latent = in.tokens.Meta.Latents[ex.Sample%in.data.PerUnit()]
			}
			rec.Top = append(rec.Top, er)
		}
		if imgs != nil && ft.Frequency > 0 && (*montages == 0 || drawn < *montages) {
			name := fmt.Sprintf("feature-%05d.png", ft.Index)
			if err := drawFeature(filepath.Join(*out, name), *out, ft, &rec, in, imgs, *alpha); err != nil {
				return err
			}
			rec.Montage = name
			drawn++
		}
		ff.Features = append(ff.Features, rec)
	}
	if err := plotFrequencies(filepath.Join(*out, "frequency.png"), sum, ff); err != nil {
		return err
	}
	if err := plotL0FVU(filepath.Join(*out, "l0_fvu.png"), sum, ff); err != nil {
		return err
	}
	raw, err := json.MarshalIndent(ff, "", " ")
	if err != nil {
		return err
	}
	if err := writeFileReplacing(filepath.Join(*out, "features.json"), append(raw, '\n')); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: %d entries (%d never fire), fvu %.4f over %d samples; %d montages, frequency.png, l0_fvu.png, features.json\n",
		*out, s.M, ff.Dead, sum.FVU, len(sum.L0), drawn)
	return nil
}

// writeFileReplacing writes through a temporary name and a rename.
func writeFileReplacing(path string, data []byte) error {
	if err := outfile.CheckTarget(path); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := outfile.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// featureImages loads the images (and for tokens the encoder attention) behind the examples.
type featureImages struct {
	m      *core.Model
	src    probe.Source
	byID   map[string]int
	random bool
	cache  map[string]*exampleImage
}

type exampleImage struct {
	base *image.RGBA
	attn []float32 // [heads, L, N]
	grid core.TokenGrid
}

func openFeatureImages(in *saeInput) (*featureImages, error) {
	var m *core.Model
	var src probe.Source
	var random bool
	var err error
	if in.tokens != nil {
		m, src, random, err = tokenModel(in.tokens)
		if err != nil {
			return nil, err
		}
	} else {
		path := in.identity["features"]
		r, err := probe.Open(path)
		if err != nil {
			return nil, err
		}
		meta := r.Metadata()
		r.Close()
		if meta["source.path"] == "" {
			return nil, fmt.Errorf("%s names no source", path)
		}
		if src, err = probe.OpenSource(meta["source.path"]); err != nil {
			return nil, err
		}
		if mp := meta["model"]; mp != "" {
			if mm, err := core.Load(mp); err == nil {
				m, random = mm, randomWeights(mm)
			}
		}
		if m == nil {
			return nil, fmt.Errorf("cannot open the model %q the features came from (needed for its preprocessing)", meta["model"])
		}
	}
	fi := &featureImages{m: m, src: src, random: random, byID: map[string]int{}, cache: map[string]*exampleImage{}}
	for i := 0; i < src.Len(); i++ {
		fi.byID[src.Item(i).ID] = i
	}
	return fi, nil
}

func (fi *featureImages) close() { fi.m.Close() }

// get preprocesses the image with this id and, for tokens, runs the model for its encoder
// attention.
func (fi *featureImages) get(id string, attention bool) (*exampleImage, error) {
	if e, ok := fi.cache[id]; ok {
		return e, nil
	}
	i, ok := fi.byID[id]
	if !ok {
		return nil, fmt.Errorf("image %q is not in the source", id)
	}
	res, err := loadItem(fi.m, fi.src.Item(i), preprocess.Options{MaxPixels: preprocess.DefaultMaxPixels})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", id, err)
	}
	e := &exampleImage{base: enlargeRGB(res.Resized, 1)}
	if attention {
		o, err := fi.m.Forward(res.Pixels, 1, res.H, res.W, core.Trace{EncoderAttention: true})
		if err != nil {
			return nil, err
		}
		e.attn, e.grid = o.EncoderAttention, o.Grid
	}
	if len(fi.cache) > 4096 {
		clear(fi.cache)
	}
	fi.cache[id] = e
	return e, nil
}

// drawFeature writes one entry's montage: its top examples, for tokens as heatmaps over the
// image on one colour scale, and each tile as its own PNG beside it (for the explorer).
func drawFeature(path, dir string, ft sae.Feature, rec *featureRecord, in *saeInput, fi *featureImages, alpha float64) error {
	tokens := in.tokens != nil
	var tiles []viz.Tile
	var maps [][]float32
	var bases []*exampleImage
	hi := 0.0
	for i, ex := range ft.Top {
		e, err := fi.get(rec.Top[i].ID, tokens)
		if err != nil {
			return err
		}
		bases = append(bases, e)
		if tokens {
			g := e.grid
			mp := make([]float32, g.Height*g.Width)
			sae.TokenHeatmap(mp, e.attn, fi.m.Config.NumCrossAttentionHeads, fi.m.Config.NumLatents, rec.Top[i].Latent, ex.Value, g)
			_, h := viz.Range(mp)
			hi = max(hi, h)
			maps = append(maps, mp)
		}
	}
	scale := 1
	if b := bases[0].base.Bounds(); b.Dx() < 96 {
		scale = (96 + b.Dx() - 1) / b.Dx() // small images (28×28) drawn large enough to read
	}
	for i, e := range bases {
		var img image.Image = upscale(e.base, scale)
		title := fmt.Sprintf("%s %.3g", shortID(rec.Top[i].ID), rec.Top[i].Value)
		if tokens {
			g := e.grid
			img = viz.Overlay(img, maps[i], g.Height, g.Width, alpha, viz.HeatmapOptions{Min: 0, Max: max(hi, 1e-12)})
			title = fmt.Sprintf("%s L%d %.2g", shortID(rec.Top[i].ID), rec.Top[i].Latent, rec.Top[i].Value)
		}
		name := fmt.Sprintf("feature-%05d-%d.png", ft.Index, i)
		if err := viz.SavePNG(filepath.Join(dir, name), img); err != nil {
			return err
		}
		rec.Top[i].Image = name
		tiles = append(tiles, viz.Tile{Image: img, Title: title})
	}
	random := ""
	if fi.random {
		random = " (random weights)"
	}
	what := "top images"
	if tokens {
		what = "colour bar: activation x cross-attention"
	}
	fig := viz.Figure{Tiles: tiles, Cols: min(len(tiles), 3)}
	img := fig.Image()
	if tokens {
		img = viz.WithColorbar(img, 0, max(hi, 1e-12), nil)
	}
	inner := viz.Montage([]viz.Tile{{Image: img, Title: what}}, 1)
	titled := viz.Montage([]viz.Tile{{Image: inner, Title: fmt.Sprintf("feature %d: freq %.2g, mean %.3g%s", ft.Index, ft.Frequency, ft.MeanValue, random)}}, 1)
	return viz.SavePNG(path, titled)
}

func shortID(id string) string {
	if i := strings.LastIndexByte(id, '/'); i >= 0 && len(id) > 12 {
		return id[i+1:]
	}
	return id
}

// upscale enlarges img by an integer factor (nearest neighbour).
func upscale(img *image.RGBA, f int) *image.RGBA {
	if f <= 1 {
		return img
	}
	b := img.Bounds()
	dst := image.NewRGBA(image.Rect(0, 0, b.Dx()*f, b.Dy()*f))
	for y := 0; y < b.Dy()*f; y++ {
		for x := 0; x < b.Dx()*f; x++ {
			copy(dst.Pix[dst.PixOffset(x, y):dst.PixOffset(x, y)+4], img.Pix[img.PixOffset(x/f, y/f):img.PixOffset(x/f, y/f)+4])
		}
	}
	return dst
}

func plotTitle(ff *featuresFile, what string) string {
	t := fmt.Sprintf("%s: TopK SAE, M = %d, k = %d", what, ff.Dict, ff.K)
	if ff.Layer != "" {
		t += ", " + ff.Layer + " tokens"
	}
	if ff.RandomWeights {
		t += " (random weights)"
	}
	return t
}

// plotFrequencies draws the histogram of log10 firing frequency over the entries that fire.
func plotFrequencies(path string, sum *sae.Summary, ff *featuresFile) error {
	var v plotter.Values
	for _, f := range sum.Features {
		if f.Frequency > 0 {
			v = append(v, math.Log10(f.Frequency))
		}
	}
	p := plot.New()
	p.Title.Text = plotTitle(ff, "Feature frequency")
	p.X.Label.Text = fmt.Sprintf("log10 fraction of samples on which the entry fires (%d of %d entries never fire)", ff.Dead, ff.Dict)
	p.Y.Label.Text = "entries"
	if len(v) > 0 {
		h, err := plotter.NewHist(v, 30)
		if err != nil {
			return err
		}
		p.Add(h)
	}
	if err := outfile.CheckTarget(path); err != nil {
		return err
	}
	return p.Save(16*vg.Centimeter, 10*vg.Centimeter, path)
}

// plotL0FVU draws FVU against L0 along the trained dictionary: each code truncated to its j
// largest entries (j = 1…k), so the last point is the autoencoder itself.
func plotL0FVU(path string, sum *sae.Summary, ff *featuresFile) error {
	var pts plotter.XYs
	for j, f := range sum.TruncatedFVU {
		pts = append(pts, plotter.XY{X: float64(j + 1), Y: f})
	}
	p := plot.New()
	p.Title.Text = plotTitle(ff, "L0 vs FVU")
	p.X.Label.Text = "L0: entries kept per code (the j largest; the SAE keeps k)"
	p.Y.Label.Text = "FVU = Σ‖x − x̂‖² / Σ‖x − μ‖²"
	line, points, err := plotter.NewLinePoints(pts)
	if err != nil {
		return err
	}
	p.Add(line, points)
	p.Y.Min = 0
	if err := outfile.CheckTarget(path); err != nil {
		return err
	}
	return p.Save(16*vg.Centimeter, 10*vg.Centimeter, path)
}

// serveSAE makes the explorer's features view of the autoencoder in dir (features from its
// features/ folder) on the served model, which must be the one the autoencoder's data came from.
func serveSAE(dir string, m *core.Model) (*serve.SAE, error) {
	s, rep, err := loadSAE(dir)
	if err != nil {
		return nil, err
	}
	fdir := filepath.Join(dir, "features")
	if _, err := os.Stat(filepath.Join(fdir, "features.json")); err != nil {
		return nil, fmt.Errorf("--sae %s: no features/features.json; run probe sae features --sae %s first", dir, dir)
	}
	want := rep.Identity["data.tokens"]
	D := m.Config.DLatents
	if want != "" {
		t, err := probe.OpenTokens(want)
		if err != nil {
			return nil, fmt.Errorf("--sae %s: its tokens: %w", dir, err)
		}
		meta := t.Meta
		t.Close()
		if w := meta.Identity["weights.sha256"]; w != "" {
			if got, err := sha256File(m.WeightsPath()); err != nil || got != w {
				return nil, fmt.Errorf("--sae %s was trained on tokens of other weights than the served model's", dir)
			}
		}
		if D != s.D || meta.State > m.Config.NumSelfAttentionApplications() {
			return nil, fmt.Errorf("--sae %s takes %d channels at state %d; the model has %d", dir, s.D, meta.State, D)
		}
		return &serve.SAE{Dir: fdir, Active: func(px []float32, h, w int) ([]serve.ActiveFeature, error) {
			var x []float32
			_, err := m.Forward(px, 1, h, w, core.Trace{OnHiddenState: func(st int, hidden []float32) {
				if st != meta.State {
					return
				}
				for _, l := range meta.Latents {
					x = append(x, hidden[l*D:(l+1)*D]...)
				}
			}})
			if err != nil {
				return nil, err
			}
			return activeFeatures(s, x, meta.Latents), nil
		}}, nil
	}
	reps, err := m.Config.ParseRepresentations(rep.Column)
	if err != nil || reps[0].Dim != s.D {
		return nil, fmt.Errorf("--sae %s: its column %q is not a representation of the served model with %d values", dir, rep.Column, s.D)
	}
	return &serve.SAE{Dir: fdir, Active: func(px []float32, h, w int) ([]serve.ActiveFeature, error) {
		vecs, _, err := m.Extract(px, 1, h, w, reps)
		if err != nil {
			return nil, err
		}
		return activeFeatures(s, vecs[0], nil), nil
	}}, nil
}

// activeFeatures encodes rows x (one per latent of latents, or one row when latents is nil) and
// lists the entries with positive values.
func activeFeatures(s *sae.SAE, x []float32, latents []int) []serve.ActiveFeature {
	n := len(x) / s.D
	idx, val := make([]int32, n*s.K), make([]float32, n*s.K)
	s.Encode(idx, val, x, n)
	var out []serve.ActiveFeature
	for r := 0; r < n; r++ {
		l := -1
		if latents != nil {
			l = latents[r]
		}
		for e := 0; e < s.K; e++ {
			if v := val[r*s.K+e]; v > 0 {
				out = append(out, serve.ActiveFeature{Index: int(idx[r*s.K+e]), Latent: l, Value: v})
			}
		}
	}
	return out
}

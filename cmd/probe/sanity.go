package main

import (
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/core/preprocess"
	"github.com/perceiverkit/perceiver/explain"
	"github.com/perceiverkit/perceiver/faithfulness"
	"github.com/perceiverkit/perceiver/internal/outfile"
	"github.com/perceiverkit/perceiver/probe"
	"github.com/perceiverkit/perceiver/viz"
)

func init() {
	register("sanity", "model-randomisation sanity checks of attribution maps (cascading randomisation, random logit)", runSanity)
}

const sanityHelp = `usage: probe sanity (--model DIR | --random) (--image IMG | --data SOURCE) --methods LIST --out DIR [--target K] [--seed N] [--save-randomized DIR2] [flags]

Do the maps depend on what the model learned? (Adebayo et al. 2018; Sixt et al. 2020.) The
parameters are re-initialised as Hugging Face's _init_weights does (weights, latents and position
tables N(0, initializer_range²), biases 0, norm weights 1, BatchNorm running mean 0 and variance 1),
cascading from the output end over G = S + 3 groups: decoder, self_attends.{S−1} … self_attends.0
(each shared by all blocks), cross_attention, input (latent array and input stage); step k keeps
the draws of the steps before it. At each step every method's map for the target (--target, or
the original prediction) is compared with the original model's: Spearman of |maps| and of signed
maps (average ranks; null for a constant map) and SSIM of |m|/max|m| as scikit-image computes it
with data_range 1 (7×7 uniform window, on the map's own grid; null below 7×7). The random-logit
test compares the map for a random other class (uniform, --seed) with the target's, on the
original model. Maps that do not change are not explanations of this model. With --data instead
of --image, every image is explained for its own prediction and sanity.json holds the mean
similarities over the images with their standard errors ("se"), the targets and random-logit
classes per image; cascade.png shows the means, maps.png the first image.

Writes into --out: sanity.json, sanity.md, cascade.png (similarity against step, per method) and
maps.png (every method's |map| per step). --save-randomized DIR2 writes DIR2/step-NN/ (NN = 01 … G)
as model folders, so anyone can recompute a step. Existing outputs are refused unless --force.

flags:`

func runSanity(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sanity", sanityHelp, stderr)
	var mf modelFlags
	mf.register(fs)
	random := fs.Bool("random", false, "use the full-size architecture of --arch with random weights (seed 1) instead of --model")
	arch := archFlag(fs)
	imagePath := fs.String("image", "", "image file")
	data := fs.String("data", "", "instead of --image: a data set (image folder, manifest or IDX files), each image explained for its own prediction; similarities are averaged with standard errors")
	limit := fs.Int("limit", 0, "with --data: the first N images (0: all)")
	methodList := fs.String("methods", "", "comma-separated methods, or all: "+strings.Join(explain.Names(), ", "))
	target := targetVar(fs, "with --image: the class to explain")
	seed := fs.Uint64("seed", 1, "seed of the re-initialisation, of the random logit's class (and of smoothgrad's noise)")
	saveDir := fs.String("save-randomized", "", "also write each step's model to DIR/step-NN/")
	out := fs.String("out", "", "output folder")
	force := fs.Bool("force", false, "replace existing outputs")
	def := explain.DefaultOptions()
	steps := fs.Int("steps", def.Steps, "integrated gradients: Gauss–Legendre nodes")
	baseline := fs.String("baseline", def.Baseline, "integrated gradients: baseline, zero or black")
	samples := fs.Int("samples", def.Samples, "smoothgrad: noisy samples")
	noise := fs.Float64("noise", def.Noise, "smoothgrad: noise σ as a fraction of the image's max − min")
	window := fs.Int("window", def.Window, "occlusion: window side in pixels")
	stride := fs.Int("stride", def.Stride, "occlusion: step between windows in pixels")
	if err := parseFlags(fs, args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 || (*imagePath == "") == (*data == "") || *out == "" || *methodList == "" || *random == (mf.model != "") {
		return badUsage(fs, "image|data", "out", "methods", "model|random")
	}
	if err := target.check(); err != nil {
		return err
	}
	if *limit < 0 {
		return fmt.Errorf("--limit %d: want 0 (all) or more", *limit)
	}
	if *data != "" && !target.top1() {
		return fmt.Errorf("--target applies to --image; with --data each image's prediction is explained")
	}
	names, err := parseMethods(*methodList)
	if err != nil {
		return err
	}
	opt := explain.Options{Steps: *steps, Baseline: *baseline, Samples: *samples, Noise: *noise, Seed: *seed, Window: *window, Stride: *stride}
	if err := checkExplainOptions(opt); err != nil {
		return err
	}
	limitMemory()
	m, source, err := mf.openOrRandomNamed(*random, *arch, stderr)
	if err != nil {
		return err
	}
	defer m.Close()
	cascade, err := faithfulness.NewCascade(m, *seed)
	if err != nil {
		return err
	}
	G := len(cascade.Groups)
	var items []probe.Item
	if *data != "" {
		src, err := probe.OpenSource(*data)
		if err != nil {
			return err
		}
		n := src.Len()
		if *limit > 0 {
			n = min(n, *limit)
		}
		for i := range n {
			items = append(items, src.Item(i))
		}
	} else {
		items = []probe.Item{{Index: 0, ID: *imagePath, Path: *imagePath}}
	}
	outputs := []string{"sanity.json", "sanity.md", "cascade.png", "maps.png"}
	var targets []string
	for _, f := range outputs {
		targets = append(targets, filepath.Join(*out, f))
	}
	if *saveDir != "" {
		for k := 1; k <= G; k++ {
			for _, f := range []string{core.ConfigFile, core.PreprocessorFile, "model.safetensors"} {
				targets = append(targets, filepath.Join(stepDir(*saveDir, k), f))
			}
		}
	}
	for _, p := range targets {
		if err := checkOutput(p, *force); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fmt.Errorf("output folder: %w", err)
	}
	labels := m.Config.Labels()
	if len(labels) < 2 {
		return fmt.Errorf("the random-logit test needs at least 2 classes, the model has %d", len(labels))
	}
	if err := checkSanityMemory(len(items), len(names), m); err != nil {
		return err
	}
	skips := preprocess.NewSkips(stderr)
	var imgs []sanityImage
	for _, it := range items {
		img, err := loadItem(m, it, mf.decodeOptions())
		if err != nil {
			if *data == "" {
				return err
			}
			skips.Add(it.ID, err)
			continue
		}
		fwd, err := m.Forward(img.Pixels, 1, img.H, img.W, core.Trace{})
		if err != nil {
			return fmt.Errorf("%s: %w", it.ID, err)
		}
		class := core.Argmax(fwd.Logits)
		if *data == "" {
			if class, err = target.resolve(labels, fwd.Logits); err != nil {
				return err
			}
		}
		in := explain.Input{Model: m, Pixels: img.Pixels, H: img.H, W: img.W, Target: class}
		orig, err := computeExplanations(in, opt, names)
		if err != nil {
			return fmt.Errorf("%s: %w", it.ID, err)
		}
		// Random logit, on the original model (before the cascade changes it); one class per image
		// (the first image's draw for --image) from --seed and the image's index.
		rl := faithfulness.RandomLogitClass(len(labels), class, *seed+uint64(it.Index))
		inRL := in
		inRL.Target = rl
		rlMaps, err := computeExplanations(inRL, opt, names)
		if err != nil {
			return fmt.Errorf("%s: random logit: %w", it.ID, err)
		}
		si := sanityImage{id: it.ID, in: in, orig: orig, randomLogit: rl}
		if si.rlSim, err = compareMaps(orig, rlMaps); err != nil {
			return fmt.Errorf("%s: %w", it.ID, err)
		}
		sim0, err := compareMaps(orig, orig)
		if err != nil {
			return fmt.Errorf("%s: %w", it.ID, err)
		}
		si.steps = append(si.steps, sim0)
		imgs = append(imgs, si)
	}
	if len(imgs) == 0 {
		return fmt.Errorf("no image could be read (%d skipped)", skips.Count())
	}
	first := imgs[0]
	fmt.Fprintf(stdout, "%d image(s); first %s: target %d (%s); %d groups: %s\n", len(imgs), first.id, first.in.Target, labels[first.in.Target], G, strings.Join(groupNames(cascade.Groups), ", "))
	groups := groupNames(cascade.Groups)
	perStep := [][]explain.Map{first.orig} // the first image's maps, for maps.png
	for k := 1; k <= G; k++ {
		cascade.Next()
		if *saveDir != "" {
			md := map[string]string{"producer": "perceiverkit probe sanity", "model": source, "seed": fmt.Sprint(*seed),
				"randomized": strings.Join(groups[:k], ","), "initializer_range": fmt.Sprint(m.Config.InitializerRange)}
			if err := m.Save(stepDir(*saveDir, k), md); err != nil {
				return fmt.Errorf("--save-randomized: %w", err)
			}
		}
		for i := range imgs {
			maps, err := computeExplanations(imgs[i].in, opt, names)
			if err != nil {
				return fmt.Errorf("%s: step %d (%s): %w", imgs[i].id, k, groups[k-1], err)
			}
			sim, err := compareMaps(imgs[i].orig, maps)
			if err != nil {
				return fmt.Errorf("%s: %w", imgs[i].id, err)
			}
			imgs[i].steps = append(imgs[i].steps, sim)
			if i == 0 {
				perStep = append(perStep, maps)
			}
		}
		fmt.Fprintf(stdout, "step %d/%d: randomised %s\n", k, G, groups[k-1])
	}
	rep := aggregateSanity(imgs, groups, names)
	if *data != "" {
		rep.Images, rep.Skipped = len(imgs), skips.Count()
	}

	title := source
	if *random {
		title = "random weights: " + source
	}
	if len(imgs) > 1 {
		title += fmt.Sprintf(", mean of %d images", len(imgs))
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := writeOutput(targets[0], append(js, '\n')); err != nil {
		return err
	}
	what := *imagePath
	if *data != "" {
		what = fmt.Sprintf("%d images of %s (%d skipped)", rep.Images, *data, rep.Skipped)
	}
	md := sanityMarkdown(rep, names, title, what)
	if err := writeOutput(targets[1], md); err != nil {
		return err
	}
	if err := rep.PlotCascade(targets[2], title, names); err != nil {
		return err
	}
	if err := viz.SavePNG(targets[3], sanityGrid(perStep, rep, title)); err != nil {
		return err
	}
	stdout.Write(md)
	fmt.Fprintf(stdout, "\nwrote %s\n", strings.Join(targets[:4], ", "))
	if *saveDir != "" {
		fmt.Fprintf(stdout, "wrote %s … %s\n", stepDir(*saveDir, 1), stepDir(*saveDir, G))
	}
	return nil
}

// sanityImage is one image's part of a sanity run: its input, its original maps and its
// similarities at each step (steps[0]: the original with itself).
type sanityImage struct {
	id          string
	in          explain.Input
	orig        []explain.Map
	randomLogit int
	rlSim       map[string]faithfulness.Similarity
	steps       []map[string]faithfulness.Similarity
}

// compareMaps compares each original map with the corresponding new one, on their own grid.
func compareMaps(orig, maps []explain.Map) (map[string]faithfulness.Similarity, error) {
	res := map[string]faithfulness.Similarity{}
	for i, mp := range maps {
		o := orig[i]
		if mp.Grid.Rows != o.Grid.Rows || mp.Grid.Cols != o.Grid.Cols {
			return nil, fmt.Errorf("%s: maps on %d×%d and %d×%d grids", mp.Method, o.Grid.Rows, o.Grid.Cols, mp.Grid.Rows, mp.Grid.Cols)
		}
		s, err := faithfulness.Compare(o.Values, mp.Values, o.Grid.Rows, o.Grid.Cols)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", mp.Method, err)
		}
		res[mp.Method] = s
	}
	return res, nil
}

// aggregateSanity is sanity.json: one image's similarities as they are, several images' as means
// with standard errors.
func aggregateSanity(imgs []sanityImage, groups, names []string) *faithfulness.SanityReport {
	rep := &faithfulness.SanityReport{Target: imgs[0].in.Target, Groups: groups}
	multi := len(imgs) > 1
	mean := func(get func(sanityImage) map[string]faithfulness.Similarity) (map[string]faithfulness.Similarity, map[string]faithfulness.Similarity) {
		if !multi {
			return get(imgs[0]), nil
		}
		m, se := map[string]faithfulness.Similarity{}, map[string]faithfulness.Similarity{}
		for _, n := range names {
			var all []faithfulness.Similarity
			for _, im := range imgs {
				all = append(all, get(im)[n])
			}
			m[n], se[n] = faithfulness.MeanSimilarity(all)
		}
		return m, se
	}
	for k := range len(groups) + 1 {
		m, se := mean(func(im sanityImage) map[string]faithfulness.Similarity { return im.steps[k] })
		rep.Steps = append(rep.Steps, faithfulness.SanityStep{Randomized: append([]string{}, groups[:k]...), Methods: m, SE: se})
	}
	m, se := mean(func(im sanityImage) map[string]faithfulness.Similarity { return im.rlSim })
	rep.RandomLogit = faithfulness.RandomLogit{Class: imgs[0].randomLogit, Methods: m, SE: se}
	if multi {
		rep.Target, rep.RandomLogit.Class = -1, -1
		for _, im := range imgs {
			rep.Targets = append(rep.Targets, im.in.Target)
			rep.RandomLogit.Classes = append(rep.RandomLogit.Classes, im.randomLogit)
		}
	}
	return rep
}

// checkSanityMemory refuses a run whose original maps (kept for every image until the last step)
// would not fit: images × methods × pixels × 4 bytes.
func checkSanityMemory(images, methods int, m *core.Model) error {
	const limit = 4 << 30
	px := m.Preprocessor.Size.Height * m.Preprocessor.Size.Width
	if need := int64(images) * int64(methods) * int64(px) * 4; need > limit {
		return fmt.Errorf("--limit: %d images × %d methods of %d pixels need %d bytes of maps, more than %d: lower --limit", images, methods, px, need, int64(limit))
	}
	return nil
}

// stepDir is the folder of step k's model under --save-randomized.
func stepDir(dir string, k int) string { return filepath.Join(dir, fmt.Sprintf("step-%02d", k)) }

// checkOutput refuses a path that is not a regular file, and an existing one without --force.
func checkOutput(path string, force bool) error {
	if force {
		return outfile.CheckTarget(path)
	}
	if err := refuseExisting(path); err != nil {
		return fmt.Errorf("%w (or pass --force)", err)
	}
	return nil
}

// writeOutput writes a checked target through a temporary name.
func writeOutput(path string, data []byte) error {
	if err := outfile.CheckTarget(path); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := outfile.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func groupNames(gs []faithfulness.Group) []string {
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = g.Name
	}
	return out
}

func fmtSim(v *float64) string {
	if v == nil {
		return "—"
	}
	return fmt.Sprintf("%.4f", *v)
}

// fmtSimSE prints a mean with its standard error when there is one.
func fmtSimSE(v, se *float64) string {
	if v == nil || se == nil {
		return fmtSim(v)
	}
	return fmt.Sprintf("%.4f ± %.4f", *v, *se)
}

// sanityMarkdown is sanity.md: the last step's and the random logit's similarities per method, and
// every step's Spearman of |maps|.
func sanityMarkdown(r *faithfulness.SanityReport, methods []string, title, what string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# Sanity checks: %s\n\n%s. Similarity of each method's map to the original model's map (1: unchanged). ", title, what)
	if r.Images > 1 {
		b.WriteString("Means over the images ± standard errors; each image explained for its own prediction, its random logit drawn for it. ")
	} else {
		fmt.Fprintf(&b, "Target class %d; random logit class %d. ", r.Target, r.RandomLogit.Class)
	}
	b.WriteString("A map that stays similar after the model is randomised does not explain the model.\n\n")
	last := r.Steps[len(r.Steps)-1]
	b.WriteString("| method | all randomised: Spearman abs | Spearman | SSIM | random logit: Spearman abs | Spearman | SSIM |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, n := range methods {
		s, l := last.Methods[n], r.RandomLogit.Methods[n]
		se, le := last.SE[n], r.RandomLogit.SE[n]
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", n, fmtSimSE(s.SpearmanAbs, se.SpearmanAbs), fmtSimSE(s.Spearman, se.Spearman), fmtSimSE(s.SSIM, se.SSIM),
			fmtSimSE(l.SpearmanAbs, le.SpearmanAbs), fmtSimSE(l.Spearman, le.Spearman), fmtSimSE(l.SSIM, le.SSIM))
	}
	b.WriteString("\nSpearman of |maps| after each cascade step:\n\n| method |")
	for _, g := range r.Groups {
		fmt.Fprintf(&b, " +%s |", g)
	}
	b.WriteString("\n|---|" + strings.Repeat("---:|", len(r.Groups)) + "\n")
	for _, n := range methods {
		fmt.Fprintf(&b, "| %s |", n)
		for _, st := range r.Steps[1:] {
			fmt.Fprintf(&b, " %s |", fmtSim(st.Methods[n].SpearmanAbs))
		}
		b.WriteString("\n")
	}
	return []byte(b.String())
}

// sanityGrid draws every method's |map|/max|map| (the SSIM's input) at every step: a row per
// method, a column per step, one shared colour bar, under a title.
func sanityGrid(perStep [][]explain.Map, r *faithfulness.SanityReport, title string) image.Image {
	var tiles []viz.Tile
	for i := range perStep[0] {
		for k, maps := range perStep {
			mp := maps[i]
			v := make([]float32, len(mp.Values))
			var mx float32
			for j, x := range mp.Values {
				v[j] = max(x, -x)
				mx = max(mx, v[j])
			}
			if mx > 0 {
				for j := range v {
					v[j] /= mx
				}
			}
			h, w := mp.Grid.Rows, mp.Grid.Cols
			f := max(1, (160+max(h, w)-1)/max(h, w))
			pic := viz.Heatmap(v, h, w, viz.HeatmapOptions{Min: 0, Max: 1, Width: f * w, Height: f * h})
			label := mp.Method // the first column: the original model's map
			if k > 0 {
				label = "+" + r.Groups[k-1]
			}
			tiles = append(tiles, viz.Tile{Image: pic, Title: label})
		}
	}
	fig := viz.Figure{Tiles: tiles, Cols: len(perStep), Scale: &viz.Scale{Min: 0, Max: 1}}.Image()
	return withHeader(fig, []string{
		"Cascading randomisation: " + title,
		"rows: methods, first column the original model's map, then the groups randomised so far (from the output end)",
		"colour: |map| / max |map| (unitless, 0 to 1), each map on its own grid",
	})
}

// withHeader puts lines of text above img.
func withHeader(img image.Image, lines []string) image.Image {
	const lineH = 16
	b := img.Bounds()
	w := b.Dx()
	for _, l := range lines {
		w = max(w, 12+7*len([]rune(l)))
	}
	out := image.NewRGBA(image.Rect(0, 0, w, b.Dy()+lineH*len(lines)+6))
	draw.Draw(out, out.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	d := font.Drawer{Dst: out, Src: image.NewUniform(color.Black), Face: basicfont.Face7x13}
	for i, l := range lines {
		d.Dot = fixed.P(6, 6+lineH*i+11)
		d.DrawString(l)
	}
	draw.Draw(out, image.Rect(0, lineH*len(lines)+6, b.Dx(), out.Bounds().Dy()), img, b.Min, draw.Src)
	return out
}

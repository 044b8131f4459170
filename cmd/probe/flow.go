package main

import (
	"errors"
	"flag"
	"fmt"
	"image"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/core/preprocess"
	"github.com/perceiverkit/perceiver/core/weights"
	"github.com/perceiverkit/perceiver/internal/outfile"
	"github.com/perceiverkit/perceiver/internal/progress"
	"github.com/perceiverkit/perceiver/opticalflow"
	"github.com/perceiverkit/perceiver/viz"
)

func init() {
	register("flow", "optical flow between two frames (or every consecutive pair of a folder)", runFlow)
}

// pixelList is a repeatable y,x flag.
type pixelList [][2]int

func (p *pixelList) String() string { return fmt.Sprint(*p) }

func (p *pixelList) Set(s string) error {
	a, b, ok := strings.Cut(s, ",")
	y, err1 := strconv.Atoi(strings.TrimSpace(a))
	x, err2 := strconv.Atoi(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil {
		return fmt.Errorf("want y,x (row, column), got %q", s)
	}
	*p = append(*p, [2]int{y, x})
	return nil
}

type flowOptions struct {
	out       string
	raw       bool
	overlap   int
	maxFlow   float64
	title     string
	queries   pixelList
	decode    preprocess.Options
	modelName string
}

func runFlow(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("flow", "usage: probe flow (--model DIR | --random) (--frame1 A --frame2 B | --frames-dir DIR) --out DIR [--raw] [--query y,x …]", stderr)
	var mf modelFlags
	mf.register(fs)
	random := fs.Bool("random", false, "the full-size architecture with random weights (seed 1), for trying the command without the checkpoint; pictures say so")
	frame1 := fs.String("frame1", "", "first frame (any image format the toolkit decodes)")
	frame2 := fs.String("frame2", "", "second frame, the same size")
	dir := fs.String("frames-dir", "", "folder of frames: the flow of every consecutive pair, in name order")
	var opt flowOptions
	fs.StringVar(&opt.out, "out", "", "output folder (created if missing)")
	fs.BoolVar(&opt.raw, "raw", false, "also write the flow in the model's units (Hugging Face's, pixels/20) as safetensors, tensor flow [1,H,W,2]")
	optionalIntVar(fs, &opt.overlap, "overlap", -1, "least overlap of the tiles of frames larger than the training size, in `pixels` (default 20 as DeepMind's, at most a third of a small model's tile)")
	fs.Float64Var(&opt.maxFlow, "max-flow", 0, "flow length in pixels drawn fully saturated (default: each field's largest; set it to compare pictures)")
	fs.Var(&opt.queries, "query", "y,x: also draw which input pixels informed the flow at that pixel (repeatable; single pair only)")
	force := fs.Bool("force", false, "replace outputs of an earlier run (without it, existing outputs are refused before any work)")
	if err := parseFlags(fs, args); err != nil {
		return errUsage
	}
	pair := *frame1 != "" || *frame2 != ""
	if fs.NArg() > 0 || opt.out == "" || *random == (mf.model != "") || pair == (*dir != "") || (pair && (*frame1 == "" || *frame2 == "")) {
		return badUsage(fs, "out", "model|random", "frame1|frames-dir", "frame2|frames-dir")
	}
	if len(opt.queries) > 0 && !pair {
		return fmt.Errorf("--query needs --frame1 and --frame2")
	}
	// Every output of the run is named, and checked, before any work: two frames of one stem
	// (x.jpg, x.png) would both write x.flo.
	var frames []string
	set := outfile.Set{Fresh: !*force}
	if pair {
		if err := flowTargets(&set, "flow", *frame1, &opt); err != nil {
			return err
		}
	} else {
		var err error
		if frames, err = listFrames(*dir); err != nil {
			return err
		}
		for i := 0; i+1 < len(frames); i++ {
			if err := flowTargets(&set, flowName(frames[i]), frames[i], &opt); err != nil {
				return err
			}
		}
	}
	if err := set.Check(); err != nil {
		if errors.Is(err, outfile.ErrExists) {
			return fmt.Errorf("%w (or pass --force to replace the outputs of an earlier run)", err)
		}
		return err
	}
	var err error
	fs.Visit(func(f *flag.Flag) { // unset, --overlap is -1: the default below
		if f.Name == "overlap" && opt.overlap < 0 {
			err = fmt.Errorf("--overlap %d: must be at least 0", opt.overlap)
		}
	})
	if err != nil {
		return err
	}
	m, err := mf.openOrRandom(*random, "flow", stderr)
	if err != nil {
		return err
	}
	defer m.Close()
	opt.modelName = mf.model
	if *random {
		opt.modelName = "random weights (not a trained model)"
	}
	if _, ok := m.TrainSize(); !ok {
		return fmt.Errorf("%s is a %s classifier, not an optical flow model (PerceiverForOpticalFlow)", opt.modelName, m.Weights.Input.Kind())
	}
	if size, _ := m.TrainSize(); opt.overlap < 0 {
		opt.overlap = min(opticalflow.MinOverlap, min(size[0], size[1])/3)
	} else if side := min(size[0], size[1]); opt.overlap >= side {
		return fmt.Errorf("--overlap %d: must be less than the model's tile side, %d pixels", opt.overlap, side)
	}
	opt.decode = mf.decodeOptions()
	if err := os.MkdirAll(opt.out, 0o755); err != nil {
		return err
	}
	if pair {
		var bar *progress.Bar // tiles of frames larger than the training size
		written, err := flowPair(m, *frame1, *frame2, "flow", &opt, func(done, total int) {
			if bar == nil && total > 1 {
				bar = progress.New(stderr, int64(total), "tiles", progress.Unit("tile"))
			}
			if bar != nil {
				bar.Add(1)
			}
		})
		if bar != nil {
			bar.Finish()
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s\n", strings.Join(written, ", "))
		return nil
	}
	bar := progress.New(stderr, int64(len(frames)-1), "flow", progress.Unit("pair"))
	for i := 0; i+1 < len(frames); i++ {
		name := flowName(frames[i])
		if _, err := flowPair(m, frames[i], frames[i+1], name, &opt, nil); err != nil {
			bar.Finish()
			return fmt.Errorf("after %d of %d pairs: %w", i, len(frames)-1, err)
		}
		bar.Add(1)
	}
	bar.Finish()
	fmt.Fprintf(stdout, "wrote %d flow fields to %s\n", len(frames)-1, opt.out)
	return nil
}

// listFrames returns the image files of dir in name order; at least two.
func listFrames(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("--frames-dir: %w", err)
	}
	var out []string
	for _, e := range entries {
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm":
			if !e.IsDir() {
				out = append(out, filepath.Join(dir, e.Name()))
			}
		}
	}
	slices.Sort(out)
	if len(out) < 2 {
		return nil, fmt.Errorf("--frames-dir %s: %d image files, need at least two", dir, len(out))
	}
	return out, nil
}

// flowName is the output stem of the pair starting at frame: its file name without extension.
func flowName(frame string) string {
	return strings.TrimSuffix(filepath.Base(frame), filepath.Ext(frame))
}

// flowTargets adds the files flowPair writes for the pair named name (starting at frame) to set.
func flowTargets(set *outfile.Set, name, frame string, opt *flowOptions) error {
	paths := []string{name + ".flo", name + ".png"}
	if opt.raw {
		paths = append(paths, name+".safetensors")
	}
	for _, q := range opt.queries {
		paths = append(paths, fmt.Sprintf("query_%d_%d.png", q[0], q[1]))
	}
	for _, p := range paths {
		if err := set.AddFrom(filepath.Join(opt.out, p), frame); err != nil {
			return err
		}
	}
	return nil
}

// flowPair computes the flow from frame a to frame b and writes name.flo, name.png (and
// name.safetensors with --raw, query_Y_X.png per query) into opt.out.
func flowPair(m *core.Model, a, b, name string, opt *flowOptions, each func(done, total int)) ([]string, error) {
	var imgs [2]*preprocess.RGB
	for i, path := range []string{a, b} {
		img, err := preprocess.DecodeFile(path, opt.decode)
		if err != nil {
			return nil, err
		}
		imgs[i] = img
	}
	frames, err := preprocess.FlowFrames(imgs[0], imgs[1])
	if err != nil {
		return nil, fmt.Errorf("%s, %s: %w", a, b, err)
	}
	h, w := imgs[0].H, imgs[0].W
	raw, err := opticalflow.Compute(m, frames, h, w, opt.overlap, each)
	if err != nil {
		return nil, fmt.Errorf("%s, %s: %w", a, b, err)
	}
	field := opticalflow.Pixels(raw, h, w)
	var written []string
	path := filepath.Join(opt.out, name+".flo")
	if err := opticalflow.SaveFlo(path, field); err != nil {
		return nil, err
	}
	written = append(written, path)
	title := fmt.Sprintf("%s -> %s", filepath.Base(a), filepath.Base(b))
	if m.WeightsPath() == "" {
		title = "RANDOM WEIGHTS: " + title
	}
	path = filepath.Join(opt.out, name+".png")
	if err := viz.SavePNG(path, opticalflow.Picture(field, opt.maxFlow, title)); err != nil {
		return nil, err
	}
	written = append(written, path)
	if opt.raw {
		path = filepath.Join(opt.out, name+".safetensors")
		t := &weights.Tensor{Name: "flow", DType: "F32", Shape: []int{1, h, w, 2}, Data: raw}
		meta := map[string]string{"producer": "perceiverkit probe flow", "model": opt.modelName, "frame1": a, "frame2": b,
			"units": "Hugging Face's PerceiverForOpticalFlow output; pixels = 20 × these"}
		if err := weights.WriteSafetensors(path, []*weights.Tensor{t}, meta); err != nil {
			return nil, err
		}
		written = append(written, path)
	}
	if len(opt.queries) > 0 {
		paths, err := drawQueries(m, frames, h, w, imgs[0], opt)
		if err != nil {
			return written, err
		}
		written = append(written, paths...)
	}
	return written, nil
}

// drawQueries draws, for each query pixel, the map of the input pixels that informed its flow
// vector, over the first frame, computed in the tile where the pixel is most central (the rest of
// the frame is grey).
func drawQueries(m *core.Model, frames []float32, h, w int, base *preprocess.RGB, opt *flowOptions) ([]string, error) {
	size, _ := m.TrainSize()
	byTile := map[[2]int][][2]int{}
	var order [][2]int
	for _, q := range opt.queries {
		if q[0] < 0 || q[0] >= h || q[1] < 0 || q[1] >= w {
			return nil, fmt.Errorf("--query %d,%d is outside the %d×%d frames", q[0], q[1], h, w)
		}
		o, err := opticalflow.BestTile(h, w, size, opt.overlap, q[0], q[1])
		if err != nil {
			return nil, err
		}
		if _, seen := byTile[o]; !seen {
			order = append(order, o)
		}
		byTile[o] = append(byTile[o], q)
	}
	last := m.Config.NumSelfAttentionApplications()
	var written []string
	for _, o := range order {
		tile := opticalflow.Crop(frames, h, w, o, size)
		var final []float32
		if _, err := m.ForwardFrames(tile, 1, size[0], size[1], core.Trace{OnHiddenState: func(i int, hid []float32) {
			if i == last {
				final = append([]float32(nil), hid...)
			}
		}}); err != nil {
			return written, err
		}
		var local [][2]int
		for _, q := range byTile[o] {
			local = append(local, [2]int{q[0] - o[0], q[1] - o[1]})
		}
		maps, err := m.FlowQueryMaps(tile, size[0], size[1], final, local)
		if err != nil {
			return written, err
		}
		for i, q := range byTile[o] {
			full := make([]float32, h*w)
			for p := range full {
				full[p] = float32(math.NaN()) // outside the tile: not computed, drawn grey
			}
			for y := 0; y < size[0]; y++ {
				copy(full[(o[0]+y)*w+o[1]:(o[0]+y)*w+o[1]+size[1]], maps[i][y*size[1]:(y+1)*size[1]])
			}
			img := viz.Overlay(enlargeRGB(base, 1), full, h, w, 0.6, viz.HeatmapOptions{})
			markPixel(img, q[1], q[0])
			path := filepath.Join(opt.out, fmt.Sprintf("query_%d_%d.png", q[0], q[1]))
			title := fmt.Sprintf("what informed the flow at (%d, %d)", q[0], q[1])
			if m.WeightsPath() == "" {
				title = "RANDOM WEIGHTS: " + title
			}
			fig := viz.Montage([]viz.Tile{{Image: img, Title: title}}, 1)
			if err := viz.SavePNG(path, fig); err != nil {
				return written, err
			}
			written = append(written, path)
		}
	}
	return written, nil
}

// markPixel draws a small red cross centred on (x, y).
func markPixel(img *image.RGBA, x, y int) {
	red := color.RGBA{255, 0, 0, 255}
	for d := -3; d <= 3; d++ {
		img.SetRGBA(x+d, y, red)
		img.SetRGBA(x, y+d, red)
	}
}

// dumpFrames is probe dump --frames: every tensor of the optical flow model on one frame pair,
// named as Hugging Face's outputs, with its input patches [1, 2, 27, H, W].
func dumpFrames(mf *modelFlags, list, out string, stdout, stderr io.Writer) error {
	a, b, ok := strings.Cut(list, ",")
	if !ok || a == "" || b == "" || strings.Contains(b, ",") {
		return fmt.Errorf("--frames %q: want two image paths separated by a comma", list)
	}
	m, err := mf.open(stderr)
	if err != nil {
		return err
	}
	defer m.Close()
	if _, ok := m.TrainSize(); !ok {
		return fmt.Errorf("--frames needs an optical flow model; %s is a %s classifier", mf.model, m.Weights.Input.Kind())
	}
	var imgs [2]*preprocess.RGB
	for i, path := range []string{a, b} {
		if imgs[i], err = preprocess.DecodeFile(path, mf.decodeOptions()); err != nil {
			return err
		}
	}
	frames, err := preprocess.FlowFrames(imgs[0], imgs[1])
	if err != nil {
		return fmt.Errorf("%s, %s: %w", a, b, err)
	}
	h, w := imgs[0].H, imgs[0].W
	res, err := m.ForwardFrames(frames, 1, h, w, core.TraceAll)
	if err != nil {
		return fmt.Errorf("%s, %s: %w", a, b, err)
	}
	patches := make([]float32, core.FlowPatchChannels*h*w)
	core.FlowPatches(patches, frames, h, w)
	tensors := append([]*weights.Tensor{{Name: "patches", DType: "F32", Shape: []int{1, 2, 27, h, w}, Data: patches}}, res.Tensors()...)
	meta := map[string]string{"producer": "perceiverkit probe dump", "model": mf.model, "frame1": a, "frame2": b}
	if err := weights.WriteSafetensors(out, tensors, meta); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %d tensors to %s\n", len(tensors), out)
	return nil
}

// benchFrames returns probe bench's preprocessing for the flow model: two synthetic h×w frames
// (the second the first moved by two pixels) turned into the model's input, decoding not timed.
func benchFrames(h, w int) func() (*preprocess.Result, error) {
	var imgs [2]*preprocess.RGB
	for t := range imgs {
		img := preprocess.NewRGB(w, h)
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				for c := 0; c < 3; c++ {
					img.Pix[(y*w+x)*3+c] = uint8(((x+2*t)*7 + y*13 + c*51) % 251)
				}
			}
		}
		imgs[t] = img
	}
	return func() (*preprocess.Result, error) {
		f, err := preprocess.FlowFrames(imgs[0], imgs[1])
		return &preprocess.Result{Pixels: f, H: h, W: w}, err
	}
}

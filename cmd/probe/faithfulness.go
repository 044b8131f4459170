package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/core/preprocess"
	"github.com/perceiverkit/perceiver/explain"
	"github.com/perceiverkit/perceiver/faithfulness"
	"github.com/perceiverkit/perceiver/internal/flagcheck"
	"github.com/perceiverkit/perceiver/internal/outfile"
	"github.com/perceiverkit/perceiver/internal/progress"
	"github.com/perceiverkit/perceiver/internal/runid"
	"github.com/perceiverkit/perceiver/probe"
)

func init() {
	register("faithfulness", "rank attribution methods by positive and negative perturbation over a data set", runFaithfulness)
}

const faithfulnessHelp = `usage: probe faithfulness (--model DIR | --random) --data SOURCE --methods LIST --out DIR [flags]

For each image, the target is the unperturbed prediction. Each method's map (token maps drawn on
the pixels) ranks the pixels; for f = k/steps, k = 0…steps−1, the top ⌊f·N⌋ pixels (positive:
highest values first; negative: lowest first; ties by the lower flat index) are set to 0 in
pixel_values, in all channels, and the softmax probability of the target and whether it is still
the prediction are recorded. Curves are averaged over images; AUC by the trapezoid rule over f.
The methods are those of the explain registry plus random (a seeded uniform map per image, the
floor); "all" names every one.

--metrics road adds ROAD (remove and debias, Rong et al. 2022): for p = j/steps, j = 1…steps−1,
the first ⌊p·N⌋ pixels of the order (MoRF: highest first; LeRF: lowest first; p is the fraction
removed in both) are imputed as the weighted mean of their 8 neighbours (1/6 edge, 1/12 diagonal),
solved jointly in pixel_values, plus noise σ = --road-noise in [0,1] intensity units (seeded by
--seed; 0: none); the softmax probability of the unperturbed prediction is recorded, and the AUC
taken by the trapezoid rule over those p (not rescaled). --rank-by chooses the ranking.

Writes into --out: images.jsonl (one line of curves per image, appended as each finishes: rerun
with --resume to continue an interrupted run), run.json (the settings, checked on --resume),
report.json, report.md (the methods ranked by negative − positive AUC of the probability) and
curves.png. Bad images are skipped and counted.

flags:`

// faithfulnessRecord is one line of images.jsonl.
type faithfulnessRecord struct {
	Index  int                            `json:"index"`
	ID     string                         `json:"id"`
	Target int                            `json:"target"`
	Curves map[string]faithfulness.Curves `json:"curves"`
}

// faithfulnessRun is run.json: what must agree for --resume to continue a run. Every field but
// the model's path is compared (through runid.Check, field by field), and Identity holds the
// weights' digest, the configurations, the precision and the source's path and digest, as extract
// stores them.
type faithfulnessRun struct {
	Model    string            `json:"model"`
	Identity map[string]string `json:"identity"`
	Source   string            `json:"source"`
	Methods  []string          `json:"methods"`
	Steps    int               `json:"steps"`
	Seed     uint64            `json:"seed"`
	Window   int               `json:"window"`
	Stride   int               `json:"stride"`
	// Metrics, RoadNoise and RankBy arrived with ROAD; a run.json without them was a deletion run.
	Metrics   []string `json:"metrics,omitempty"`
	RoadNoise float64  `json:"road_noise"`
	RankBy    string   `json:"rank_by,omitempty"`
}

func runFaithfulness(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("faithfulness", faithfulnessHelp, stderr)
	var mf modelFlags
	mf.register(fs)
	random := fs.Bool("random", false, "use the full-size architecture with random weights (seed 1) instead of --model")
	arch := archFlag(fs)
	var sf sourceFlags
	sf.register(fs)
	data := fs.String("data", "", dataUsage)
	limit := fs.Int("limit", 0, "score only the first N images of the source (0: all)")
	methodList := fs.String("methods", "", "comma-separated methods: "+strings.Join(append(explain.Names(), "random"), ", ")+", or all")
	steps := fs.Int("steps", 10, "fractions k/steps, k = 0…steps−1")
	batch := fs.Int("batch", 8, "perturbed images per forward pass")
	seed := fs.Uint64("seed", 1, "seed of the random map (and of smoothgrad's noise)")
	defaults := explain.DefaultOptions()
	window := fs.Int("window", defaults.Window, "occlusion: window side in pixels")
	stride := fs.Int("stride", defaults.Stride, "occlusion: stride in pixels")
	metricList := fs.String("metrics", "deletion", "comma-separated: deletion (pixels set to 0), road (removed and imputed)")
	roadNoise := fs.Float64("road-noise", 0.01, "ROAD: σ of the noise added to imputed pixels, in [0,1] intensity units (0: none)")
	rankBy := fs.String("rank-by", "", "rank the methods by deletion or road (default: deletion when measured)")
	out := fs.String("out", "", "output folder")
	resume := fs.Bool("resume", false, "continue the run in --out, skipping images already scored")
	quiet := fs.Bool("quiet", false, "no progress bar")
	if err := parseFlags(fs, args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 || *data == "" || *out == "" || *methodList == "" || *random == (mf.model != "") {
		return badUsage(fs, "data", "out", "methods", "model|random")
	}
	if *steps < 2 || *batch < 1 || *limit < 0 {
		return fmt.Errorf("--steps must be at least 2, --batch positive and --limit not negative")
	}
	for _, c := range []struct {
		flag     string
		v, limit int64
	}{{"--steps", int64(*steps), maxSteps}, {"--window", int64(*window), maxWindow}, {"--stride", int64(*stride), maxWindow}} {
		if err := flagcheck.Count(c.flag, c.v, c.limit); err != nil {
			return err
		}
	}
	targets := append([]string{filepath.Join(*out, "images.jsonl"), filepath.Join(*out, "run.json")}, faithfulness.ReportFiles(*out)...)
	if err := outfile.CheckAll(targets...); err != nil {
		return err
	}
	methods, err := parseFaithfulnessMethods(*methodList)
	if err != nil {
		return err
	}
	metrics, err := parseMetrics(*metricList)
	if err != nil {
		return err
	}
	if !(*roadNoise >= 0 && *roadNoise <= 1) {
		return fmt.Errorf("--road-noise %g: want σ in [0, 1] (intensity units)", *roadNoise)
	}
	if *rankBy != "" && !slices.Contains(metrics, *rankBy) {
		return fmt.Errorf("--rank-by %q: want one of the --metrics measured (%s)", *rankBy, strings.Join(metrics, ", "))
	}
	if !slices.Contains(metrics, "road") {
		*roadNoise = 0 // not used: kept out of the run's identity
	}
	src, err := sf.open(*data)
	if err != nil {
		return err
	}
	m, modelName, err := mf.openOrRandomNamed(*random, *arch, stderr)
	if err != nil {
		return err
	}
	defer m.Close()
	if err := checkBatch("--batch", *batch, m); err != nil {
		return err
	}

	identity, err := modelIdentity(m, modelName)
	if err != nil {
		return err
	}
	for k, v := range sourceIdentity(*data, src) {
		identity[k] = v
	}
	run := faithfulnessRun{Model: modelName, Identity: identity, Source: src.Name(), Methods: methods, Steps: *steps, Seed: *seed, Window: *window, Stride: *stride,
		Metrics: metrics, RoadNoise: *roadNoise, RankBy: *rankBy}
	records, err := openFaithfulnessRun(*out, run, *resume)
	if err != nil {
		return err
	}
	done := map[string]bool{}
	for _, r := range records {
		done[r.ID] = true
	}
	n := src.Len()
	if *limit > 0 {
		n = min(n, *limit)
	}
	var todo []int
	within := make(map[string]bool, n)
	for i := range n {
		id := src.Item(i).ID
		within[id] = true
		if !done[id] {
			todo = append(todo, i)
		}
	}
	// The report covers the images this run asks for: a resume with a smaller --limit leaves the
	// earlier run's other lines in images.jsonl but out of the report.
	records = slices.DeleteFunc(records, func(r faithfulnessRecord) bool { return !within[r.ID] })
	log, err := outfile.Append(filepath.Join(*out, "images.jsonl"))
	if err != nil {
		return err
	}
	defer log.Close()

	// No signal handling: Ctrl-C ends the run at once, and --resume redoes at most the image in
	// progress (each finished image is one complete line of images.jsonl).
	var barOut io.Writer = stderr
	if *quiet {
		barOut = nil
	}
	bar := progress.New(barOut, int64(n), "faithfulness", progress.Unit("img"), progress.Start(int64(n-len(todo))))
	skips := preprocess.NewSkips(stderr)
	opt := explain.DefaultOptions()
	opt.Seed, opt.Window, opt.Stride = *seed, *window, *stride
	start := time.Now()
	scored := 0
	var times phaseTimes
	for it, err := range src.Stream(todo) {
		if err != nil {
			bar.Finish()
			return err
		}
		img, err := loadItem(m, it, mf.decodeOptions())
		if err != nil {
			skips.Add(it.ID, err)
			bar.Add(1)
			continue
		}
		ro := faithfulness.RoadOptions{Steps: *steps, Batch: *batch, Noise: *roadNoise, Seed: *seed, Stream: uint64(it.Index), Std: roadStd(m)}
		rec, err := scoreImage(m, it, img, methods, opt, metrics, faithfulness.Options{Steps: *steps, Batch: *batch}, ro, &times)
		if err != nil {
			bar.Finish()
			return fmt.Errorf("%s: %w", it.ID, err)
		}
		line, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		if _, err := log.Write(append(line, '\n')); err != nil {
			return fmt.Errorf("images.jsonl: %w", err)
		}
		records = append(records, *rec)
		scored++
		bar.Add(1)
	}
	bar.Finish()
	elapsed := time.Since(start)
	if len(records) == 0 {
		return fmt.Errorf("no image could be scored (%d skipped)", skips.Count())
	}
	per := map[string][]faithfulness.Curves{}
	for _, r := range records {
		for _, name := range methods {
			per[name] = append(per[name], r.Curves[name])
		}
	}
	meta := map[string]any{"model": modelName, "source": src.Name(), "seed": *seed, "batch": *batch, "metrics": metrics,
		"occlusion":  map[string]int{"window": *window, "stride": *stride},
		"new_images": scored, "seconds": elapsed.Seconds(), "program": "perceiverkit probe " + version(),
		"seconds_by_phase": map[string]float64{"maps": times.Maps, "deletion": times.Deletion, "road": times.Road},
		"created":          time.Now().UTC().Format(time.RFC3339)}
	if slices.Contains(metrics, "road") {
		meta["road"] = map[string]any{"noise": *roadNoise, "noise_units": "intensity in [0,1], divided by image_std per channel",
			"imputation": "noisy linear (8 neighbours, 1/6 edge, 1/12 diagonal), pixel_values space", "solver": "conjugate gradients, diagonal preconditioner",
			"residual": faithfulness.RoadTolerance}
	}
	if scored > 0 {
		meta["images_per_second"] = float64(scored) / elapsed.Seconds()
	}
	rep, err := faithfulness.NewReportBy(per, *steps, skips.Count(), *rankBy, meta)
	if err != nil {
		return err
	}
	if err := rep.Write(*out); err != nil {
		return err
	}
	stdout.Write(rep.Markdown())
	fmt.Fprintf(stdout, "\nwrote %s: %d images (%d new, %.3g images/s), %d skipped bad files\n",
		filepath.Join(*out, "report.md"), rep.Images, scored, float64(scored)/elapsed.Seconds(), skips.Count())
	return nil
}

// roadStd is what one intensity unit is in pixel_values, per channel: image_std when the processor
// normalises, 1 when it does not (then pixel_values are intensities already).
func roadStd(m *core.Model) [3]float64 {
	if !m.Preprocessor.DoNormalize {
		return [3]float64{1, 1, 1}
	}
	return [3]float64(m.Preprocessor.ImageStd[:3])
}

// parseMetrics reads --metrics: deletion and road, each at most once.
func parseMetrics(s string) ([]string, error) {
	var out []string
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if name != "deletion" && name != "road" {
			return nil, fmt.Errorf("--metrics: unknown metric %q (want deletion, road)", name)
		}
		if slices.Contains(out, name) {
			return nil, fmt.Errorf("--metrics: %q listed twice", name)
		}
		out = append(out, name)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--metrics %q: name deletion, road or both", s)
	}
	return out, nil
}

// parseFaithfulnessMethods reads --methods: registered names and random, or all.
func parseFaithfulnessMethods(s string) ([]string, error) {
	known := append(explain.Names(), "random")
	if strings.TrimSpace(s) == "all" {
		return known, nil
	}
	var out []string
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if !slices.Contains(known, name) {
			return nil, fmt.Errorf("--methods: unknown method %q (want %s, or all)", name, strings.Join(known, ", "))
		}
		if slices.Contains(out, name) {
			return nil, fmt.Errorf("--methods: %q listed twice", name)
		}
		out = append(out, name)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--methods %q: name at least one method", s)
	}
	return out, nil
}

// openFaithfulnessRun prepares --out: a new run writes run.json (an existing images.jsonl is an
// error without --resume); a resumed run checks run.json and returns the images already scored,
// dropping a last line cut short by a crash.
func openFaithfulnessRun(dir string, run faithfulnessRun, resume bool) ([]faithfulnessRecord, error) {
	logPath := filepath.Join(dir, "images.jsonl")
	runPath := filepath.Join(dir, "run.json")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("output folder: %w", err)
	}
	want, err := json.MarshalIndent(run, "", "  ")
	if err != nil {
		return nil, err
	}
	if !resume {
		if _, err := os.Stat(logPath); err == nil {
			return nil, fmt.Errorf("%s exists: pass --resume to continue that run, or choose another --out", logPath)
		}
		return nil, outfile.WriteFile(runPath, append(want, '\n'), 0o644)
	}
	have, err := os.ReadFile(runPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, outfile.WriteFile(runPath, append(want, '\n'), 0o644)
	}
	if err != nil {
		return nil, err
	}
	var prev faithfulnessRun
	if err := json.Unmarshal(have, &prev); err != nil {
		return nil, fmt.Errorf("%s: %w", runPath, err)
	}
	if prev.Metrics == nil {
		prev.Metrics = []string{"deletion"} // written before ROAD
	}
	// The source's name holds its path as given, and the model's path may change between attempts:
	// the identity's resolved path and digests decide.
	stored, err := flatIdentity(prev, prev.Identity, "model", "identity", "source")
	if err != nil {
		return nil, err
	}
	now, err := flatIdentity(run, run.Identity, "model", "identity", "source")
	if err != nil {
		return nil, err
	}
	if err := runid.Check(runPath, stored, "this run", now, unionKeys(stored, now), "it was made with other settings: rerun with those (the same weights and data), or choose another --out"); err != nil {
		return nil, fmt.Errorf("--resume: %w", err)
	}
	raw, err := os.ReadFile(logPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var recs []faithfulnessRecord
	good := 0
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 1<<30)
	for sc.Scan() {
		line := sc.Bytes()
		var r faithfulnessRecord
		end := good + len(line) + 1
		if end > len(raw) || json.Unmarshal(line, &r) != nil {
			break // a line cut short by a crash: it is scored again
		}
		recs = append(recs, r)
		good = end
	}
	if good < len(raw) {
		if err := os.Truncate(logPath, int64(good)); err != nil {
			return nil, err
		}
	}
	return recs, nil
}

// loadItem decodes and preprocesses one item of a source (from Source.Stream): its decoded
// pixels, its encoded bytes (named by its id in errors) or its file; an item whose image could not
// be read returns that error.
func loadItem(m *core.Model, it probe.Item, opt preprocess.Options) (*preprocess.Result, error) {
	switch {
	case it.Err != nil:
		return nil, it.Err
	case it.Image != nil:
		return m.Preprocessor.Process(preprocess.FromImage(it.Image))
	case it.Data != nil:
		img, err := preprocess.Decode(bytes.NewReader(it.Data), it.ID, opt)
		if err != nil {
			return nil, err
		}
		res, err := m.Preprocessor.Process(img)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", it.ID, err)
		}
		return res, nil
	case it.Path == "":
		// Item listings of WebDataset and Parquet sources carry no image: only Stream reads them.
		return nil, fmt.Errorf("%s: no image in the listing: this command reads images one by one, which a WebDataset or Parquet source does not offer (extract, faithfulness and ablate stream them)", it.ID)
	}
	return m.Preprocessor.LoadImage(it.Path, opt)
}

// scoreImage computes every method's map of one image for its prediction and runs both
// perturbations of all of them.
// phaseTimes add up the seconds a run spends on the maps and on each metric, for report.json.
type phaseTimes struct {
	Maps, Deletion, Road float64
}

func scoreImage(m *core.Model, it probe.Item, img *preprocess.Result, methods []string, opt explain.Options, metrics []string, fo faithfulness.Options, ro faithfulness.RoadOptions, times *phaseTimes) (*faithfulnessRecord, error) {
	t0 := time.Now()
	base, err := m.Forward(img.Pixels, 1, img.H, img.W, core.Trace{})
	if err != nil {
		return nil, err
	}
	im := faithfulness.Image{Pixels: img.Pixels, H: img.H, W: img.W, Logits: base.Logits}
	target := im.Target()
	n := img.H * img.W
	maps := make([][]float32, len(methods))
	for i, name := range methods {
		if name == "random" {
			rng := rand.New(rand.NewPCG(opt.Seed, uint64(it.Index)))
			maps[i] = make([]float32, n)
			for p := range maps[i] {
				maps[i][p] = rng.Float32()
			}
			continue
		}
		meth, _ := explain.Lookup(name)
		mp, err := meth.Compute(explain.Input{Model: m, Pixels: img.Pixels, H: img.H, W: img.W, Target: target}, opt)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if mp.Grid.Height != img.H || mp.Grid.Width != img.W || len(mp.Values) != mp.Grid.Tokens() {
			return nil, fmt.Errorf("%s: a map of %d values on %v for a %d×%d image", name, len(mp.Values), mp.Grid, img.H, img.W)
		}
		if mp.Grid.Pixel() {
			maps[i] = mp.Values
		} else {
			maps[i] = make([]float32, n)
			mp.Grid.ToPixels(maps[i], mp.Values)
		}
	}
	t1 := time.Now()
	times.Maps += t1.Sub(t0).Seconds()
	curves := make([]faithfulness.Curves, len(maps))
	if slices.Contains(metrics, "deletion") {
		if curves, err = faithfulness.Evaluate(m, im, maps, fo); err != nil {
			return nil, err
		}
	}
	t2 := time.Now()
	times.Deletion += t2.Sub(t1).Seconds()
	if slices.Contains(metrics, "road") {
		road, err := faithfulness.EvaluateROAD(m, im, maps, ro)
		if err != nil {
			return nil, fmt.Errorf("ROAD: %w", err)
		}
		for i := range curves {
			curves[i].Road = &road[i]
		}
	}
	times.Road += time.Since(t2).Seconds()
	rec := &faithfulnessRecord{Index: it.Index, ID: it.ID, Target: target, Curves: map[string]faithfulness.Curves{}}
	for i, name := range methods {
		rec.Curves[name] = curves[i]
	}
	return rec, nil
}

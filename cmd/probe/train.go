package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/core/preprocess"
	"github.com/perceiverkit/perceiver/core/weights"
	"github.com/perceiverkit/perceiver/internal/flagcheck"
	"github.com/perceiverkit/perceiver/internal/outfile"
	"github.com/perceiverkit/perceiver/internal/par"
	"github.com/perceiverkit/perceiver/internal/progress"
	"github.com/perceiverkit/perceiver/probe"
	"github.com/perceiverkit/perceiver/train"
)

func init() {
	register("train", "train or fine-tune a Perceiver classifier on a labelled data set (AdamW, resumable)", runTrain)
}

// Files `probe train` writes in its output folder.
const (
	trainCheckpoint = "checkpoint.safetensors"
	trainJSON       = "train.json"
	trainLossPNG    = "loss.png"
	trainInit       = "init.safetensors"
	trainWeights    = "model.safetensors"
)

// trainOutputs are the files a finished run leaves (init.safetensors only with --labels).
var trainOutputs = []string{core.ConfigFile, core.PreprocessorFile, trainWeights, trainJSON, trainLossPNG, trainInit}

// trainFlags are the parsed flags of one run.
type trainFlags struct {
	mf                         modelFlags
	initCfg, data, out, evalOn string
	evalName                   string
	trainSet                   string
	labels, epochs, steps      int
	batch, warmup              int
	lr, wd                     float64
	schedule                   string
	shuffle, resume, force     bool
	quiet                      bool
	seed                       uint64
	checkpointEvery            time.Duration
	checkpointSteps            int
	set                        map[string]bool // flags given on the command line
}

// trainStopAfter, when positive, stops a run right after update trainStopAfter's checkpoint as a
// kill would (no final outputs, the checkpoint kept): for the resume tests.
var trainStopAfter int

func runTrain(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("train", "usage: probe train (--model DIR | --init CONFIG.json) --data SOURCE --out DIR [--train all|decoder] [--labels N] [--epochs E | --steps S] [--batch B] [--lr LR] [--weight-decay WD] [--warmup W] [--schedule constant|cosine] [--shuffle=false] [--seed N] [--eval SOURCE] [--resume] [--force]", stderr)
	var f trainFlags
	f.mf.register(fs)
	fs.StringVar(&f.initCfg, "init", "", "start from scratch: a config.json (preprocessor_config.json beside it), weights drawn from --seed with Hugging Face's _init_weights")
	fs.StringVar(&f.data, "data", "", "training data: an image folder (class/xxx.jpg), a .csv/.tsv manifest (path,label[,split]) or IDX files (MNIST format)")
	fs.StringVar(&f.out, "out", "", "output folder: the trained model (config.json, preprocessor_config.json, model.safetensors), train.json, loss.png")
	fs.StringVar(&f.trainSet, "train", "all", "parameters to train: all, or decoder (perceiver.decoder.*: the query, its cross-attention and the final layer)")
	fs.IntVar(&f.labels, "labels", 0, "replace the final layer by a fresh one with N outputs (Hugging Face's init from --seed; written to OUT/init.safetensors)")
	fs.IntVar(&f.epochs, "epochs", 1, "passes over the data (ceil(n/batch) updates each)")
	fs.IntVar(&f.steps, "steps", 0, "stop after this many updates instead of --epochs")
	fs.IntVar(&f.batch, "batch", 32, "images per update (the last batch of an epoch may be smaller)")
	fs.Float64Var(&f.lr, "lr", 1e-3, "peak learning rate of AdamW")
	fs.Float64Var(&f.wd, "weight-decay", 0.01, "AdamW's decoupled weight decay λ (applied to every trained parameter)")
	fs.IntVar(&f.warmup, "warmup", 0, "updates of linear warmup from 0")
	fs.StringVar(&f.schedule, "schedule", "constant", "learning rate after warmup: constant or cosine (to 0 at the last update)")
	fs.BoolVar(&f.shuffle, "shuffle", true, "draw each epoch's order from --seed; false: batches in source order")
	fs.Uint64Var(&f.seed, "seed", 0, "seed of the shuffle and of fresh weights (--init, --labels)")
	fs.StringVar(&f.evalOn, "eval", "", "labelled data set: top-1 after each epoch, and of the final model in train.json")
	fs.StringVar(&f.evalName, "eval-name", "", "how train.json names the --eval source (default: the path given)")
	fs.BoolVar(&f.resume, "resume", false, "continue the interrupted run in --out from its last checkpoint (same model, data and options)")
	fs.BoolVar(&f.force, "force", false, "replace the outputs of an earlier run in --out")
	fs.DurationVar(&f.checkpointEvery, "checkpoint-every", 2*time.Minute, "time between checkpoints (also at the end of every epoch)")
	fs.IntVar(&f.checkpointSteps, "checkpoint-steps", 0, "also checkpoint every N updates (0: by time only)")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress bar")
	if err := parseFlags(fs, args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 || f.data == "" || f.out == "" {
		return badUsage(fs, "data", "out")
	}
	if f.evalName == "" {
		f.evalName = f.evalOn
	}
	f.set = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	return trainRun(&f, stdout, stderr)
}

// check returns the first bad flag, before anything is read.
func (f *trainFlags) check() error {
	switch {
	case (f.mf.model == "") == (f.initCfg == ""):
		return fmt.Errorf("give one of --model DIR (fine-tune) and --init CONFIG.json (from scratch)")
	case f.set["labels"] && f.labels < 1:
		return fmt.Errorf("--labels %d: want at least 1 class", f.labels)
	case f.set["epochs"] && f.set["steps"]:
		return fmt.Errorf("give --epochs or --steps, not both")
	case f.set["steps"] && f.steps < 1:
		return fmt.Errorf("--steps %d: want at least 1 update", f.steps)
	case f.epochs < 1:
		return fmt.Errorf("--epochs %d: want at least 1", f.epochs)
	case f.batch < 1:
		return fmt.Errorf("--batch %d: want at least 1 image", f.batch)
	case !(f.lr > 0) || math.IsInf(f.lr, 0):
		return fmt.Errorf("--lr %v: want a finite learning rate > 0", f.lr)
	case !(f.wd >= 0) || math.IsInf(f.wd, 0):
		return fmt.Errorf("--weight-decay %v: want a finite value ≥ 0", f.wd)
	case f.warmup < 0:
		return fmt.Errorf("--warmup %d: want ≥ 0 updates", f.warmup)
	case f.trainSet != "all" && f.trainSet != "decoder":
		return fmt.Errorf("--train %q: want all or decoder", f.trainSet)
	case f.checkpointSteps < 0 || f.checkpointEvery <= 0:
		return fmt.Errorf("--checkpoint-every must be positive and --checkpoint-steps ≥ 0")
	case f.resume && f.force:
		return fmt.Errorf("give --resume or --force, not both")
	}
	// Counts that only set work get a ceiling; --labels sizes the fresh final layer (weights, their
	// gradient and AdamW's two moments, at most d_latents of 65,536 floats each here).
	if err := flagcheck.Count("--batch", int64(f.batch), maxTrainBatch); err != nil {
		return err
	}
	if err := flagcheck.Count("--steps", int64(f.steps), maxTrainUpdates); err != nil {
		return err
	}
	if err := flagcheck.Count("--epochs", int64(f.epochs), maxTrainUpdates); err != nil {
		return err
	}
	if err := flagcheck.Count("--warmup", int64(f.warmup), maxTrainUpdates); err != nil {
		return err
	}
	if err := flagcheck.Bytes("--labels", f.labels, flagcheck.Mul(float64(f.labels), 65536, 4, 4)); err != nil {
		return err
	}
	_, err := train.ParseSchedule(f.schedule)
	return err
}

// trainSource is a probe.Source as train.Data: images through the model's processor.
type trainSource struct {
	src    probe.Source
	prep   preprocess.Config
	opt    preprocess.Options
	labels []int
	h, w   int
}

func (d *trainSource) Len() int        { return d.src.Len() }
func (d *trainSource) Label(i int) int { return d.labels[i] }

func (d *trainSource) Pixels(dst []float32, i int) error {
	it := d.src.Item(i)
	var res *preprocess.Result
	var err error
	if it.Image != nil {
		res, err = d.prep.Process(preprocess.FromImage(it.Image))
	} else {
		res, err = d.prep.LoadImage(it.Path, d.opt)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", it.ID, err)
	}
	if res.H != d.h || res.W != d.w || len(res.Pixels) != len(dst) {
		return fmt.Errorf("%s: preprocessed to %d×%d, want %d×%d", it.ID, res.H, res.W, d.h, d.w)
	}
	copy(dst, res.Pixels)
	return nil
}

// openLabelled opens a labelled source for a model with classes outputs: every item must have a
// label below classes (flag names the source's flag in errors).
func openLabelled(path, flag string, classes int, prep preprocess.Config, opt preprocess.Options) (*trainSource, error) {
	src, err := probe.OpenSource(path)
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", flag, err)
	}
	if src.Len() == 0 {
		return nil, fmt.Errorf("--%s %s: no items", flag, path)
	}
	d := &trainSource{src: src, prep: prep, opt: opt, labels: make([]int, src.Len()), h: prep.Size.Height, w: prep.Size.Width}
	for i := range src.Len() {
		it := src.Item(i)
		if !it.HasLabel {
			return nil, fmt.Errorf("--%s %s: item %s has no label (training needs a class per image)", flag, path, it.ID)
		}
		if it.Label < 0 || it.Label >= int64(classes) {
			return nil, fmt.Errorf("--%s %s: item %s has label %d, outside the model's %d classes (0…%d); --labels N replaces the final layer", flag, path, it.ID, it.Label, classes, classes-1)
		}
		d.labels[i] = int(it.Label)
	}
	return d, nil
}

// trainMemory estimates the bytes one training step holds: the activations the backward pass
// keeps per image (each self-attention application's q, k, v, probabilities, MLP values; the
// encoder's tokens and maps), the batch's pixels, and the parameters with their gradients and
// AdamW's two moments.
func trainMemory(m *core.Model, batch int) int64 {
	c := &m.Config
	L, D := int64(c.NumLatents), int64(c.DLatents)
	apps := int64(c.NumBlocks * c.NumSelfAttendsPerBlock)
	heads := int64(c.NumSelfAttentionHeads)
	h, w := m.Preprocessor.Size.Height, m.Preprocessor.Size.Width
	N, C := int64(h*w), int64(c.DModel)
	if g, err := m.Weights.Input.Grid(h, w); err == nil {
		N = int64(g.Tokens())
	}
	perImage := apps*(14*L*D+3*heads*L*L) + 6*N*C + 4*L*N + 3*int64(h*w)
	return 4 * (int64(batch)*perImage + 4*int64(m.Weights.NumParams()))
}

// maxTrainUpdates bounds --steps, --epochs and --warmup: a billion updates is years of work.
const maxTrainUpdates = 1_000_000_000

// maxTrainBatch bounds --batch (the memory check then sizes it against the machine).
const maxTrainBatch = 1 << 30

// errFinishedRun: --resume on a folder whose run finished (train.json, no checkpoint).
var errFinishedRun = errors.New("finished run")

// finishedRunError says why a finished run cannot be resumed: made from other weights or data
// (naming the identity keys that differ), or simply finished.
func finishedRunError(dir string, identity map[string]string) error {
	path := filepath.Join(dir, trainJSON)
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var rec trainRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	var differ []string
	if rec.StartSHA256 != identity["weights.sha256"] {
		differ = append(differ, "weights.sha256")
	}
	if rec.SourceDigest != identity["source.digest"] {
		differ = append(differ, "source.digest")
	}
	if len(differ) > 0 {
		return fmt.Errorf("--resume: %s holds a finished run made with other %s; choose another --out", path, strings.Join(differ, " and "))
	}
	return fmt.Errorf("--resume: %s holds a finished run (%s) and no checkpoint: nothing to resume", dir, trainJSON)
}

// prepareTrainDir checks the output folder before anything is written: new or empty; with
// --force, one holding only an earlier run's files; with --resume, one holding a checkpoint.
// Every target must be a regular file or absent.
func prepareTrainDir(f *trainFlags) error {
	for _, name := range append(slices.Clone(trainOutputs), trainCheckpoint) {
		if err := outfile.CheckTarget(filepath.Join(f.out, name)); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(f.out)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if f.resume {
			return fmt.Errorf("--resume: %s does not exist: nothing to resume", f.out)
		}
		return os.MkdirAll(f.out, 0o755)
	case err != nil:
		return err
	}
	if f.resume {
		if fileExists(filepath.Join(f.out, trainCheckpoint)) {
			return nil
		}
		if fileExists(filepath.Join(f.out, trainJSON)) {
			return errFinishedRun // checked against this run's identity once the model is open
		}
		return fmt.Errorf("--resume: %s holds no %s: nothing to resume", f.out, trainCheckpoint)
	}
	if len(entries) == 0 {
		return nil
	}
	if !f.force {
		return fmt.Errorf("%s is not empty: --resume continues an interrupted run, --force replaces an earlier run's outputs", f.out)
	}
	ours := append(slices.Clone(trainOutputs), trainCheckpoint)
	for _, e := range entries {
		if !slices.Contains(ours, e.Name()) && !strings.HasPrefix(e.Name(), ".") {
			return fmt.Errorf("--force: %s holds %s, which probe train did not write: nothing replaced; choose another --out", f.out, e.Name())
		}
	}
	for _, name := range ours {
		if err := os.Remove(filepath.Join(f.out, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// startModel is the model a run starts from and what identifies it: the fine-tuned checkpoint or
// the config drawn from --seed, then --labels' fresh final layer.
func startModel(f *trainFlags, stderr io.Writer, names []string) (*core.Model, string, map[string]*weights.Tensor, error) {
	var m *core.Model
	var digest string
	buffers := map[string]*weights.Tensor{}
	if f.initCfg != "" {
		cfg, err := core.LoadConfig(f.initCfg)
		if err != nil {
			return nil, "", nil, fmt.Errorf("--init: %w", err)
		}
		prep := preprocess.DefaultConfig()
		if p := filepath.Join(filepath.Dir(f.initCfg), core.PreprocessorFile); fileExists(p) {
			if prep, err = preprocess.LoadConfig(p); err != nil {
				return nil, "", nil, fmt.Errorf("--init: %w", err)
			}
		}
		if m, err = train.FromScratch(cfg, prep, f.seed); err != nil {
			return nil, "", nil, fmt.Errorf("--init %s: %w", f.initCfg, err)
		}
		digest = fmt.Sprintf("init seed %d", f.seed)
	} else {
		var err error
		if m, err = f.mf.open(stderr); err != nil {
			return nil, "", nil, err
		}
		p := m.WeightsPath()
		if digest, err = sha256File(p); err != nil {
			return nil, "", nil, err
		}
		// Buffers the forward pass does not read (num_batches_tracked) are carried over as they were.
		wf, err := weights.Open(p)
		if err != nil {
			return nil, "", nil, err
		}
		params := map[string]bool{}
		for _, np := range m.Weights.Params() {
			params[np.Name] = true
		}
		for name, t := range wf.Tensors {
			if !params[name] {
				buffers[name] = &weights.Tensor{Name: name, DType: t.DType, Shape: slices.Clone(t.Shape), Data: slices.Clone(t.Data)}
			}
		}
		wf.Close()
	}
	if m.Weights.Classifier() == nil {
		return nil, "", nil, fmt.Errorf("the model (%s) has no classification decoder: probe train trains the image classifiers (fourier, learned, conv), not optical flow", strings.Join(m.Config.Architectures, ", "))
	}
	// Every tensor is copied out of the read-only memory map: updates write in place.
	for _, np := range m.Weights.Params() {
		np.Param.Data = slices.Clone(np.Param.Data)
	}
	m.WeightsChanged()
	if f.labels > 0 {
		r, err := train.Relabel(m, f.labels, names, f.seed)
		if err != nil {
			return nil, "", nil, err
		}
		m = r
	}
	return m, digest, buffers, nil
}

func trainRun(f *trainFlags, stdout, stderr io.Writer) error {
	if err := f.check(); err != nil {
		return err
	}
	set := core.AllParams
	if f.trainSet == "decoder" {
		set = core.DecoderParams
	}
	// The source first (cheap, and its class names name a fresh final layer).
	src, err := probe.OpenSource(f.data)
	if err != nil {
		return fmt.Errorf("--data: %w", err)
	}
	if src.Len() == 0 {
		return fmt.Errorf("--data %s: no items: nothing to train on", f.data)
	}
	m, weightsDigest, buffers, err := startModel(f, stderr, src.Classes())
	if err != nil {
		return err
	}
	data, err := openLabelled(f.data, "data", m.Config.NumLabels(), m.Preprocessor, f.mf.decodeOptions())
	if err != nil {
		return err
	}
	var evalData *trainSource
	if f.evalOn != "" {
		if evalData, err = openLabelled(f.evalOn, "eval", m.Config.NumLabels(), m.Preprocessor, f.mf.decodeOptions()); err != nil {
			return err
		}
	}
	steps := f.steps
	perEpoch := (data.Len() + f.batch - 1) / f.batch
	if !f.set["steps"] {
		steps = f.epochs * perEpoch
	}
	need := trainMemory(m, f.batch)
	if avail := availableMemory(); float64(need) > avail {
		return fmt.Errorf("--batch %d: a training step needs about %.1f GB, more than the %.1f GB available", f.batch, float64(need)/1e9, avail/1e9)
	}
	opt := train.Options{Batch: f.batch, Steps: steps, Warmup: f.warmup, LR: f.lr, WeightDecay: f.wd,
		Schedule: train.Schedule(f.schedule), Shuffle: f.shuffle, Seed: f.seed}
	if err := opt.Check(); err != nil {
		return err
	}
	finished := false
	if err := prepareTrainDir(f); errors.Is(err, errFinishedRun) {
		finished = true
	} else if err != nil {
		return err
	}

	trained := m.Weights.Trainable(set)
	tr := &train.Trainer{Opt: opt, Data: data, Pixels: 3 * data.h * data.w, Changed: m.WeightsChanged}
	sizes := make([]int, len(trained))
	for i, p := range trained {
		tr.Names = append(tr.Names, p.Name)
		tr.Params = append(tr.Params, p.Param.Data)
		sizes[i] = p.Param.Len()
	}
	tr.Adam = train.NewAdamW(sizes, f.wd)
	tr.Objective = modelObjective(m, set, trained, data.h, data.w)

	cfgJSON, _ := json.Marshal(m.Config)
	prepJSON, _ := json.Marshal(m.Preprocessor)
	optJSON, _ := json.Marshal(struct {
		train.Options
		Train  string `json:"train"`
		Labels int    `json:"labels"`
		Init   string `json:"init,omitempty"`
	}{opt, f.trainSet, f.labels, f.initCfg})
	identity := map[string]string{
		"weights.sha256":           weightsDigest,
		"config.json":              string(cfgJSON),
		"preprocessor_config.json": string(prepJSON),
		"source.path":              resolvedPath(f.data),
		"source.digest":            probe.Digest(src),
		"options":                  string(optJSON),
	}
	ckptPath := filepath.Join(f.out, trainCheckpoint)
	if finished {
		// A finished run has nothing left to resume; but one made from other weights or data is
		// named as such, as every resumable command does (run identity).
		return finishedRunError(f.out, identity)
	}
	if f.resume {
		c, err := train.LoadCheckpoint(ckptPath)
		if err != nil {
			return err
		}
		if err := c.CheckIdentity(ckptPath, identity); err != nil {
			return err
		}
		if err := restoreCheckpoint(m, tr, c); err != nil {
			return fmt.Errorf("%s: %w", ckptPath, err)
		}
		fmt.Fprintf(stderr, "probe train: resuming %s at update %d of %d\n", f.out, tr.State.Step, steps)
	} else if f.labels > 0 {
		cls := m.Weights.Classifier()
		init := []*weights.Tensor{
			{Name: train.FinalLayerNames[0], DType: "F32", Shape: cls.FinalLayer.Weight.Shape, Data: slices.Clone(cls.FinalLayer.Weight.Data)},
			{Name: train.FinalLayerNames[1], DType: "F32", Shape: cls.FinalLayer.Bias.Shape, Data: slices.Clone(cls.FinalLayer.Bias.Data)},
		}
		if err := weights.WriteSafetensors(filepath.Join(f.out, trainInit), init, map[string]string{"seed": strconv.FormatUint(f.seed, 10), "labels": strconv.Itoa(f.labels)}); err != nil {
			return err
		}
	}
	save := func() error {
		return saveCheckpoint(ckptPath, m, tr, identity)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var barOut io.Writer = stderr
	if f.quiet {
		barOut = nil
	}
	done := int64(0)
	for k := 0; k < tr.State.Step; k++ {
		done += int64(len(tr.BatchItems(k)))
	}
	total := int64(steps/perEpoch)*int64(data.Len()) + int64(0)
	for k := (steps / perEpoch) * perEpoch; k < steps; k++ {
		total += int64(len(tr.BatchItems(k)))
	}
	bar := progress.New(barOut, total, "train", progress.Unit("img"), progress.Start(done))
	start := time.Now()
	lastSave := time.Now()
	for tr.State.Step < steps {
		k := tr.State.Step
		loss, n, err := tr.Step(ctx)
		if err != nil {
			bar.Finish()
			var nf *train.NonFiniteError
			switch {
			case errors.As(err, &nf):
				return fmt.Errorf("%w; the last good checkpoint is kept in %s (update %d)", err, ckptPath, lastCheckpointStep(ckptPath))
			case ctx.Err() != nil:
				if serr := save(); serr != nil {
					return fmt.Errorf("interrupted at update %d; the checkpoint failed: %v", k, serr)
				}
				return fmt.Errorf("interrupted after %d of %d updates; run the same command with --resume to continue", tr.State.Step, steps)
			}
			return err
		}
		bar.SetNote(fmt.Sprintf("epoch %d/%d loss %.4f", k/perEpoch+1, (steps+perEpoch-1)/perEpoch, loss))
		bar.Add(int64(n))
		if every := max(1, steps/50); !f.quiet && !bar.Enabled() && tr.State.Step%every == 0 {
			// Not a terminal (a log file, a batch job): a line now and then instead of the bar.
			recent := tr.State.Loss[max(0, len(tr.State.Loss)-every):]
			mean := 0.0
			for _, l := range recent {
				mean += l
			}
			el := time.Since(start).Seconds()
			rate := float64(bar.Count()-done) / el
			fmt.Fprintf(stderr, "probe train: update %d/%d (epoch %d) loss %.4f (mean of the last %d) %.1f images/s, ETA %s\n",
				tr.State.Step, steps, k/perEpoch+1, mean/float64(len(recent)), len(recent), rate,
				(time.Duration(float64(total-bar.Count())/rate) * time.Second).Round(time.Second))
		}
		endOfEpoch := tr.State.Step%perEpoch == 0
		if endOfEpoch && evalData != nil && tr.State.Step < steps {
			e, err := evaluate(m, evalData, f.batch)
			if err != nil {
				return err
			}
			e.Epoch, e.Step, e.Source = tr.State.Step/perEpoch, tr.State.Step, f.evalName
			tr.State.Evals = append(tr.State.Evals, e)
			fmt.Fprintf(stderr, "\nprobe train: epoch %d: top-1 %.2f%% on %s (%d images)\n", e.Epoch, 100*e.Top1, f.evalName, e.N)
		}
		if tr.State.Step < steps && (endOfEpoch || time.Since(lastSave) >= f.checkpointEvery || (f.checkpointSteps > 0 && tr.State.Step%f.checkpointSteps == 0)) {
			if err := save(); err != nil {
				return err
			}
			lastSave = time.Now()
		}
		if trainStopAfter > 0 && tr.State.Step == trainStopAfter {
			if err := save(); err != nil {
				return err
			}
			return fmt.Errorf("stopped after update %d (test hook)", trainStopAfter)
		}
	}
	bar.Finish()
	elapsed := time.Since(start)

	var final *train.Eval
	if evalData != nil {
		e, err := evaluate(m, evalData, f.batch)
		if err != nil {
			return err
		}
		e.Epoch, e.Step, e.Source = (tr.State.Step+perEpoch-1)/perEpoch, tr.State.Step, f.evalName
		tr.State.Evals = append(tr.State.Evals, e)
		final = &e
	}
	if err := writeTrainOutputs(f, m, tr, buffers, final, identity, elapsed, perEpoch, data); err != nil {
		return err
	}
	if err := os.Remove(ckptPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: %d updates of %d images (%s, %.1f images/s), final loss %.4f",
		f.out, steps, f.batch, elapsed.Round(time.Second), float64(total-done)/elapsed.Seconds(), tr.State.Loss[len(tr.State.Loss)-1])
	if final != nil {
		fmt.Fprintf(stdout, ", top-1 %.2f%% on %s (%d images)", 100*final.Top1, f.evalName, final.N)
	}
	fmt.Fprintln(stdout)
	return nil
}

// lastCheckpointStep is the update a checkpoint file holds, or 0 when there is none.
func lastCheckpointStep(path string) int {
	c, err := train.LoadCheckpoint(path)
	if err != nil {
		return 0
	}
	return c.State.Step
}

func saveCheckpoint(path string, m *core.Model, tr *train.Trainer, identity map[string]string) error {
	c := &train.Checkpoint{Identity: identity, State: tr.State, AdamT: tr.Adam.T,
		Tensors: map[string][]float32{}, Shapes: map[string][]int{}, M: map[string][]float32{}, V: map[string][]float32{}}
	for _, np := range m.Weights.Params() {
		c.Tensors[np.Name], c.Shapes[np.Name] = np.Param.Data, np.Param.Shape
	}
	for i, n := range tr.Names {
		c.M[n], c.V[n] = tr.Adam.M[i], tr.Adam.V[i]
	}
	return c.Save(path)
}

func restoreCheckpoint(m *core.Model, tr *train.Trainer, c *train.Checkpoint) error {
	for _, np := range m.Weights.Params() {
		d, ok := c.Tensors[np.Name]
		if !ok || len(d) != np.Param.Len() {
			return fmt.Errorf("the checkpoint lacks %s or has another shape", np.Name)
		}
		copy(np.Param.Data, d)
	}
	for i, n := range tr.Names {
		mm, ok1 := c.M[n]
		vv, ok2 := c.V[n]
		if !ok1 || !ok2 || len(mm) != len(tr.Adam.M[i]) || len(vv) != len(tr.Adam.V[i]) {
			return fmt.Errorf("the checkpoint lacks the moments of %s", n)
		}
		copy(tr.Adam.M[i], mm)
		copy(tr.Adam.V[i], vv)
	}
	tr.Adam.T = c.AdamT
	tr.State = c.State
	m.WeightsChanged()
	return nil
}

// evaluate is the top-1 of the model on a labelled source, in batches.
func evaluate(m *core.Model, d *trainSource, batch int) (train.Eval, error) {
	n := d.Len()
	per := 3 * d.h * d.w
	px := make([]float32, batch*per)
	right := 0
	classes := m.Config.NumLabels()
	for lo := 0; lo < n; lo += batch {
		hi := min(lo+batch, n)
		errs := make([]error, hi-lo)
		parFor(hi-lo, func(b int) { errs[b] = d.Pixels(px[b*per:(b+1)*per], lo+b) })
		for _, err := range errs {
			if err != nil {
				return train.Eval{}, err
			}
		}
		o, err := m.Forward(px[:(hi-lo)*per], hi-lo, d.h, d.w, core.Trace{})
		if err != nil {
			return train.Eval{}, err
		}
		for b := range hi - lo {
			if core.Argmax(o.Logits[b*classes:(b+1)*classes]) == d.Label(lo+b) {
				right++
			}
		}
	}
	return train.Eval{N: n, Top1: float64(right) / float64(n)}, nil
}

// trainRecord is train.json.
type trainRecord struct {
	Steps        int          `json:"steps"`
	Batch        int          `json:"batch"`
	LR           float64      `json:"lr"`
	WeightDecay  float64      `json:"weight_decay"`
	Warmup       int          `json:"warmup"`
	Schedule     string       `json:"schedule"`
	Train        string       `json:"train"`
	Labels       int          `json:"labels"`
	Seed         uint64       `json:"seed"`
	Shuffle      bool         `json:"shuffle"`
	Epochs       float64      `json:"epochs"`
	Loss         []float64    `json:"loss"`
	LRPerStep    []float64    `json:"lr_per_step"`
	Eval         *trainEval   `json:"eval"`
	EvalPerEpoch []train.Eval `json:"eval_per_epoch"`
	Command      []string     `json:"command"`
	Start        string       `json:"start"`
	StartSHA256  string       `json:"start_sha256"`
	Source       string       `json:"source"`
	SourcePath   string       `json:"source_path"`
	SourceDigest string       `json:"source_digest"`
	SourceItems  int          `json:"source_items"`
	Seconds      float64      `json:"seconds"`
	Program      string       `json:"program"`
	Created      string       `json:"created"`
}

type trainEval struct {
	Source string  `json:"source"`
	N      int     `json:"n"`
	Top1   float64 `json:"top1"`
}

func writeTrainOutputs(f *trainFlags, m *core.Model, tr *train.Trainer, buffers map[string]*weights.Tensor, final *train.Eval,
	identity map[string]string, elapsed time.Duration, perEpoch int, data *trainSource) error {
	start := f.mf.model
	if f.initCfg != "" {
		start = "init " + f.initCfg
	}
	rec := trainRecord{
		Steps: tr.Opt.Steps, Batch: tr.Opt.Batch, LR: tr.Opt.LR, WeightDecay: tr.Opt.WeightDecay, Warmup: tr.Opt.Warmup,
		Schedule: string(tr.Opt.Schedule), Train: f.trainSet, Labels: f.labels, Seed: f.seed, Shuffle: f.shuffle,
		Epochs: float64(tr.Opt.Steps) / float64(perEpoch), Loss: tr.State.Loss, LRPerStep: tr.State.LR,
		EvalPerEpoch: tr.State.Evals, Command: append([]string{"probe"}, os.Args[1:]...),
		Start: start, StartSHA256: identity["weights.sha256"], Source: data.src.Name(), SourcePath: identity["source.path"],
		SourceDigest: identity["source.digest"], SourceItems: data.Len(), Seconds: elapsed.Seconds(),
		Program: "perceiverkit probe " + version(), Created: time.Now().UTC().Format(time.RFC3339),
	}
	if rec.EvalPerEpoch == nil {
		rec.EvalPerEpoch = []train.Eval{}
	}
	if final != nil {
		rec.Eval = &trainEval{Source: final.Source, N: final.N, Top1: final.Top1}
	}
	js, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	var ts []*weights.Tensor
	for _, np := range m.Weights.Params() {
		ts = append(ts, &weights.Tensor{Name: np.Name, DType: "F32", Shape: np.Param.Shape, Data: np.Param.Data})
	}
	if _, conv := m.Weights.Input.(*core.ConvStage); conv {
		name := "perceiver.input_preprocessor.convnet.batchnorm.num_batches_tracked"
		if _, ok := buffers[name]; !ok {
			buffers[name] = &weights.Tensor{Name: name, DType: "I64", Shape: []int{}, Data: []float32{0}}
		}
	}
	for _, t := range buffers {
		ts = append(ts, t)
	}
	slices.SortFunc(ts, func(a, b *weights.Tensor) int { return strings.Compare(a.Name, b.Name) })
	cfg, err := json.MarshalIndent(m.Config, "", "  ")
	if err != nil {
		return err
	}
	prep, err := json.MarshalIndent(m.Preprocessor, "", "  ")
	if err != nil {
		return err
	}
	if err := outfile.WriteFile(filepath.Join(f.out, core.ConfigFile), cfg, 0o644); err != nil {
		return err
	}
	if err := outfile.WriteFile(filepath.Join(f.out, core.PreprocessorFile), prep, 0o644); err != nil {
		return err
	}
	note := fmt.Sprintf("trained by probe train: %d updates of %d images on %s", tr.Opt.Steps, tr.Opt.Batch, data.src.Name())
	if err := weights.WriteSafetensors(filepath.Join(f.out, trainWeights), ts, map[string]string{"format": "pt", "note": note}); err != nil {
		return err
	}
	title := fmt.Sprintf("Training loss: %s, %s", m.Config.Architectures[0], filepath.Base(f.data))
	if err := train.PlotLoss(filepath.Join(f.out, trainLossPNG), title, tr.State, perEpoch); err != nil {
		return err
	}
	return writeJSONFile(filepath.Join(f.out, trainJSON), append(js, '\n'))
}

// writeJSONFile writes data to path through a temporary name and a rename.
func writeJSONFile(path string, data []byte) error {
	if err := outfile.CheckTarget(path); err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := outfile.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// modelObjective is the batch's mean cross-entropy and its gradients through the model's
// backward pass, in the order of trained (Weights.Trainable(set)).
func modelObjective(m *core.Model, set core.ParamSet, trained []core.NamedParam, h, w int) train.Objective {
	return func(px []float32, labels []int, n int) (float64, [][]float32, error) {
		_, g, err := m.ForwardBackward(px, n, h, w, core.Trace{}, core.GradTrace{Labels: labels, Params: set})
		if err != nil {
			return 0, nil, err
		}
		if len(g.Params) != len(trained) {
			return 0, nil, fmt.Errorf("backward: %d parameter gradients for %d trained parameters", len(g.Params), len(trained))
		}
		grads := make([][]float32, len(trained))
		for i, p := range trained {
			if g.Params[i].Name != p.Name {
				return 0, nil, fmt.Errorf("backward: gradient %d is of %s, want %s", i, g.Params[i].Name, p.Name)
			}
			grads[i] = g.Params[i].Data
		}
		return g.Loss, grads, nil
	}
}

// parFor runs fn(i) for i in [0, n) on the machine's cores.
func parFor(n int, fn func(i int)) {
	par.For(n, 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			fn(i)
		}
	})
}

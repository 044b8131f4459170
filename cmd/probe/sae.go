package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/core/preprocess"
	"github.com/perceiverkit/perceiver/core/weights"
	"github.com/perceiverkit/perceiver/internal/flagcheck"
	"github.com/perceiverkit/perceiver/internal/outfile"
	"github.com/perceiverkit/perceiver/internal/progress"
	"github.com/perceiverkit/perceiver/probe"
	"github.com/perceiverkit/perceiver/probe/linear"
	"github.com/perceiverkit/perceiver/sae"
)

func init() {
	register("sae", "sparse autoencoders on features or latent tokens: sae train | encode | features", runSAE)
}

func runSAE(args []string, stdout, stderr io.Writer) error {
	sub := ""
	if len(args) > 0 {
		sub = args[0]
	}
	switch sub {
	case "train":
		return runSAETrain(args[1:], stdout, stderr)
	case "encode":
		return runSAEEncode(args[1:], stdout, stderr)
	case "features":
		return runSAEFeatures(args[1:], stdout, stderr)
	}
	if askedForHelp(args[:min(len(args), 1)]) {
		// probe help sae: every subcommand's flags.
		for _, run := range []func([]string, io.Writer, io.Writer) error{runSAETrain, runSAEEncode, runSAEFeatures} {
			run([]string{"-h"}, stdout, stderr)
			fmt.Fprintln(stderr)
		}
		return errUsage
	}
	if sub == "" {
		fmt.Fprintln(stderr, "probe sae: a subcommand is required: train, encode or features")
	} else {
		fmt.Fprintf(stderr, "probe sae: unknown subcommand %q: want train, encode or features\n", sub)
	}
	fmt.Fprintln(stderr, "usage: probe sae train|encode|features [flags]  (probe sae train -h for the flags)")
	return errUsage
}

// saeInput is the data an SAE command reads: a Parquet column or a token store.
type saeInput struct {
	data     sae.Data
	labels   []int64 // per unit, -1 unknown
	column   string  // Parquet column, or "" for tokens
	tokens   *probe.Tokens
	table    *probe.Table
	desc     string            // for reports
	identity map[string]string // what identifies the data
	close    func()
}

// openSAEInput opens --features F --column C or --tokens F.tokens/NAME.
func openSAEInput(features, column, tokens string, allowMixed bool, stderr io.Writer) (*saeInput, error) {
	switch {
	case tokens != "" && features != "":
		return nil, fmt.Errorf("give --features with --column, or --tokens, not both")
	case tokens != "":
		t, err := probe.OpenTokens(tokens)
		if err != nil {
			return nil, err
		}
		if err := t.Verify(); err != nil {
			t.Close()
			return nil, err
		}
		id := map[string]string{"tokens": resolvedPath(tokens), "tokens.shape": fmt.Sprint(t.Meta.Shape), "tokens.dtype": t.Meta.DType}
		var sums []string
		for _, p := range t.Paths {
			raw, err := os.ReadFile(strings.TrimSuffix(p, ".bin") + ".json")
			if err != nil {
				t.Close()
				return nil, err
			}
			var m probe.TokenMeta
			json.Unmarshal(raw, &m)
			sums = append(sums, m.CRC32C)
		}
		id["tokens.crc32c"] = strings.Join(sums, ",")
		in := &saeInput{data: sae.TokenData{T: t}, labels: t.Meta.Labels, tokens: t, identity: id,
			desc:  fmt.Sprintf("tokens %s: %d images × %d latents × %d channels (%s, layer %s)", tokens, t.Rows(), t.Latents(), t.Channels(), t.Meta.DType, t.Meta.Layer),
			close: func() { t.Close() }}
		return in, nil
	case features != "":
		if column == "" {
			return nil, fmt.Errorf("--features needs --column (one of the file's vector columns)")
		}
		r, err := openFeatures(features, allowMixed, stderr)
		if err != nil {
			return nil, err
		}
		defer r.Close()
		tab, err := r.Load(column)
		if err != nil {
			return nil, err
		}
		x, d, err := tab.Vector(column)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", features, err)
		}
		id := map[string]string{"features": resolvedPath(features), "column": column}
		var sums []string
		for _, f := range r.Files() {
			s, err := sha256File(f)
			if err != nil {
				return nil, err
			}
			sums = append(sums, s)
		}
		id["features.sha256"] = strings.Join(sums, ",")
		labels := make([]int64, tab.Len())
		for i := range labels {
			labels[i] = -1
			if tab.HasLabel[i] {
				labels[i] = tab.Labels[i]
			}
		}
		in := &saeInput{data: &sae.Matrix{X: x, D: d, IDs: tab.IDs}, labels: labels, column: column, table: tab, identity: id,
			desc: fmt.Sprintf("column %s of %s: %d rows × %d", column, features, tab.Len(), d), close: func() {}}
		return in, nil
	}
	return nil, fmt.Errorf("give --features F.parquet --column C, or --tokens F.tokens/NAME")
}

// saeReport is report.json.
type saeReport struct {
	D            int               `json:"d"`
	Dict         int               `json:"dict"`
	K            int               `json:"k"`
	AuxK         int               `json:"aux_k"`
	DeadWindow   int64             `json:"dead_window"`
	Column       string            `json:"column,omitempty"`
	Tokens       string            `json:"tokens,omitempty"`
	Layer        string            `json:"layer,omitempty"`
	Latents      []int             `json:"latents,omitempty"`
	Epochs       int               `json:"epochs"`
	Batch        int               `json:"batch"`
	LR           float64           `json:"lr"`
	Seed         uint64            `json:"seed"`
	HoldoutFrac  float64           `json:"holdout_fraction"`
	NTrain       int               `json:"n_train"`
	NHoldout     int               `json:"n_holdout"`
	NTrainUnits  int               `json:"n_train_images"`
	Train        sae.Metrics       `json:"train"`
	Holdout      *sae.Metrics      `json:"holdout"`
	HoldoutIDs   []string          `json:"holdout_ids"`
	Spliced      *splicedResult    `json:"spliced,omitempty"`
	Steps        int64             `json:"steps"`
	Seconds      float64           `json:"seconds"`      // the training steps
	InitSeconds  float64           `json:"init_seconds"` // the initialisation (geometric median)
	SamplesPerS  float64           `json:"samples_per_second"`
	Threads      int               `json:"threads"`
	Data         string            `json:"data"`
	Identity     map[string]string `json:"identity"`
	RandomModel  bool              `json:"random_weights"`
	Created      string            `json:"created"`
	FinalLoss    float64           `json:"final_batch_loss"`
	FinalDead    float64           `json:"final_dead_fraction_window"`
	ProgramTitle string            `json:"program"`
}

// splicedResult is the test with the reconstruction in place of the layer, on the holdout.
type splicedResult struct {
	Kind          string  `json:"kind"` // linear_probe or model_top1
	Rows          int     `json:"rows"`
	Original      float64 `json:"original_accuracy"`
	Reconstructed float64 `json:"reconstructed_accuracy"`
	Agreement     float64 `json:"agreement"` // predictions equal with and without the splice
	Note          string  `json:"note"`
}

// maxSAEEpochs bounds --epochs: a count that only sets work.
const maxSAEEpochs = 1_000_000

func runSAETrain(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sae train", "usage: probe sae train (--features F.parquet --column C | --tokens F.tokens/NAME) --out DIR [--dict M] [--k K] [--aux-k KA] [--epochs E] [--batch B] [--lr LR] [--seed S] [--holdout 0.1] [--resume] [--force]", stderr)
	features := fs.String("features", "", "Parquet file (or folder of parts) from probe extract")
	column := fs.String("column", "", "vector column of --features to learn from")
	allowMixed := allowMixedFlag(fs)
	tokens := fs.String("tokens", "", "token store FILE.tokens/NAME from probe extract --tokens (each latent token a sample)")
	out := fs.String("out", "", "output folder: sae.safetensors and report.json")
	dict := fs.Int("dict", 0, "dictionary size M (default 8 × d)")
	k := fs.Int("k", 32, "active entries per code (TopK)")
	auxK := fs.Int("aux-k", 0, "dead latents in the AuxK loss (default: the power of two nearest d/2)")
	deadWindow := fs.Int64("dead-window", 0, "training samples without firing before a latent is dead (default: one epoch)")
	epochs := fs.Int("epochs", 10, "passes over the training samples")
	batch := fs.Int("batch", 1024, "samples per Adam step")
	lr := fs.Float64("lr", 1e-3, "Adam learning rate (constant)")
	seed := fs.Uint64("seed", 1, "seed of the initialisation, split and shuffles")
	holdout := fs.Float64("holdout", 0.1, "fraction of images held out for the report")
	resume := fs.Bool("resume", false, "continue an interrupted run in --out (same data and flags)")
	force := fs.Bool("force", false, "replace an existing sae.safetensors and report.json in --out")
	quiet := fs.Bool("quiet", false, "no progress bar")
	every := fs.Int("checkpoint-steps", 0, "save a checkpoint every N steps (default: every 30 seconds and at each epoch's end)")
	noSplice := fs.Bool("no-splice", false, "skip the spliced-in test (the linear probe or the model with the reconstruction in place of the layer)")
	if err := parseFlags(fs, args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 || *out == "" {
		return badUsage(fs, "out")
	}
	in, err := openSAEInput(*features, *column, *tokens, *allowMixed, stderr)
	if err != nil {
		return err
	}
	defer in.close()
	d := in.data.Dim()
	if *dict == 0 {
		*dict = 8 * d
	}
	// Sizes from flags, checked in float64 before anything is sized by them: the dictionary's two
	// matrices with their gradients and Adam's two moments, a batch's codes and reconstructions.
	if err := flagcheck.Bytes("--dict", *dict, flagcheck.Mul(float64(*dict), float64(d), 4, 8)); err != nil {
		return err
	}
	if err := flagcheck.Bytes("--batch", *batch, flagcheck.Mul(float64(*batch), float64(max(d, *dict)), 4, 4)); err != nil {
		return err
	}
	if err := flagcheck.Count("--epochs", int64(*epochs), maxSAEEpochs); err != nil {
		return err
	}
	cfg := sae.Config{Dict: *dict, K: *k, AuxK: *auxK, DeadWindow: *deadWindow, Epochs: *epochs, Batch: *batch, LR: *lr, Seed: *seed, Holdout: *holdout}
	if err := cfg.Check(d); err != nil {
		return err
	}
	if err := checkMemory("--dict/--batch", sae.MemoryBytes(d, cfg.Dict, cfg.Batch)); err != nil {
		return err
	}
	weightsPath, reportPath := filepath.Join(*out, "sae.safetensors"), filepath.Join(*out, "report.json")
	partial := filepath.Join(*out, ".sae.partial")
	ckpt := filepath.Join(partial, "checkpoint.safetensors")
	for _, p := range []string{weightsPath, reportPath, ckpt} {
		if err := outfile.CheckTarget(p); err != nil {
			return err
		}
	}
	if !*force {
		for _, p := range []string{weightsPath, reportPath} {
			if _, err := os.Stat(p); err == nil {
				return fmt.Errorf("%s already exists; use --force to replace it or another --out", p)
			}
		}
	}
	if _, err := os.Stat(ckpt); err == nil && !*resume {
		return fmt.Errorf("%s: an interrupted run left %s; continue it with --resume or remove that folder", *out, partial)
	}
	if err := os.MkdirAll(partial, 0o755); err != nil {
		return err
	}
	if err := sae.CheckFinite(in.data); err != nil {
		return fmt.Errorf("%s: %w", in.desc, err)
	}

	identity := map[string]string{}
	for k, v := range in.identity {
		identity["data."+k] = v
	}
	identity["options"] = fmt.Sprintf("dict=%d k=%d aux-k=%d dead-window=%d epochs=%d batch=%d lr=%v seed=%d holdout=%v",
		cfg.Dict, cfg.K, cfg.AuxK, cfg.DeadWindow, cfg.Epochs, cfg.Batch, cfg.LR, cfg.Seed, cfg.Holdout)

	split := sae.MakeSplit(in.data.Units(), cfg.Holdout, cfg.Seed)
	if len(split.Train) == 0 {
		return fmt.Errorf("--holdout %v leaves no training images of %d", cfg.Holdout, in.data.Units())
	}
	opt := sae.Options{}
	if *resume {
		if _, err := os.Stat(ckpt); err == nil {
			st, had, err := sae.LoadCheckpoint(ckpt)
			if err != nil {
				return fmt.Errorf("%w; remove %s to start over", err, partial)
			}
			if err := sameIdentity(ckpt, had, identity); err != nil {
				return err
			}
			opt.Resume = st
			fmt.Fprintf(stderr, "probe sae train: resuming at epoch %d, step %d\n", st.Epoch+1, st.Next)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	nTrain := int64(len(split.Train) * in.data.PerUnit())
	steps := (nTrain + int64(cfg.Batch) - 1) / int64(cfg.Batch)
	var barOut io.Writer = stderr
	if *quiet {
		barOut = nil
	}
	startStep := int64(0)
	if opt.Resume != nil {
		startStep = int64(opt.Resume.Epoch)*steps + int64(opt.Resume.Next)
	}
	bar := progress.New(barOut, int64(cfg.Epochs)*steps, "sae train", progress.Unit("step"), progress.Start(startStep))
	lastSave := time.Now()
	start := time.Now()
	var last sae.Stats
	var ran int64
	var sumLoss, sumFVU, sumL0 float64
	var nAvg int
	opt.OnStep = func(st *sae.State, s sae.Stats) error {
		last = s
		ran++
		sumLoss += s.Loss
		sumFVU += s.FVU
		sumL0 += s.L0
		nAvg++
		if ran%10 == 1 {
			bar.SetNote(fmt.Sprintf("loss %.4f fvu %.4f l0 %.1f dead %.1f%%", s.Loss, s.FVU, s.L0, 100*s.DeadFraction))
		}
		bar.Add(1)
		endOfEpoch := int64(s.Step) == steps
		if endOfEpoch && !*quiet {
			fmt.Fprintf(stderr, "\repoch %d/%d: loss %.4f  fvu %.4f  l0 %.1f  dead %.1f%%  (means over the epoch's steps; dead: no firing in the last %d samples)\n",
				s.Epoch+1, cfg.Epochs, sumLoss/float64(nAvg), sumFVU/float64(nAvg), sumL0/float64(nAvg), 100*s.DeadFraction, st.DeadWindow)
			sumLoss, sumFVU, sumL0, nAvg = 0, 0, 0, 0
		}
		save := (*every > 0 && ran%int64(*every) == 0) || (*every == 0 && (endOfEpoch || time.Since(lastSave) > 30*time.Second))
		if ctx.Err() != nil {
			save = true
		}
		if save {
			// The position saved is after this step.
			cp := *st
			if endOfEpoch {
				cp.Epoch++
				cp.Next = 0
			}
			if err := sae.SaveCheckpoint(ckpt, &cp, identity); err != nil {
				return err
			}
			lastSave = time.Now()
		}
		if ctx.Err() != nil {
			return errInterrupted
		}
		return nil
	}
	// Initialisation (the geometric median: up to 100 passes over the training rows) is timed
	// apart from the steps, as the PyTorch reference times its loop.
	initStart := time.Now()
	if opt.Resume == nil {
		if opt.Resume, err = sae.NewState(in.data, split.Train, cfg); err != nil {
			return err
		}
	}
	initTime := time.Since(initStart)
	start = time.Now()
	st, err := sae.Train(in.data, split.Train, cfg, opt)
	bar.Finish()
	if errors.Is(err, errInterrupted) {
		return fmt.Errorf("interrupted at epoch %d step %d; run the same command with --resume to continue", last.Epoch+1, last.Step)
	}
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	model := st.Model

	rep := &saeReport{D: d, Dict: cfg.Dict, K: cfg.K, AuxK: st.AuxK, DeadWindow: st.DeadWindow, Column: in.column,
		Epochs: cfg.Epochs, Batch: cfg.Batch, LR: cfg.LR, Seed: cfg.Seed, HoldoutFrac: cfg.Holdout,
		NTrain: int(nTrain), NHoldout: len(split.Holdout) * in.data.PerUnit(), NTrainUnits: len(split.Train),
		Steps: st.Step, Seconds: elapsed.Seconds(), InitSeconds: initTime.Seconds(), Threads: runtime.GOMAXPROCS(0), Data: in.desc, Identity: identity,
		Created: time.Now().UTC().Format(time.RFC3339), FinalLoss: last.Loss, FinalDead: last.DeadFraction,
		ProgramTitle: "perceiverkit probe " + version()}
	if ran > 0 {
		rep.SamplesPerS = float64(ran) * float64(cfg.Batch) / elapsed.Seconds()
	}
	if in.tokens != nil {
		rep.Tokens, rep.Layer, rep.Latents = resolvedPath(*tokens), in.tokens.Meta.Layer, in.tokens.Meta.Latents
	}
	rep.Train = sae.Evaluate(model, in.data, split.Train)
	rep.HoldoutIDs = []string{}
	if len(split.Holdout) > 0 {
		h := sae.Evaluate(model, in.data, split.Holdout)
		rep.Holdout = &h
		for _, u := range split.Holdout {
			rep.HoldoutIDs = append(rep.HoldoutIDs, in.data.UnitID(u))
		}
	}
	if !*noSplice && len(split.Holdout) > 0 {
		sp, random, err := splicedTest(in, model, split, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "probe sae train: spliced-in test skipped: %v\n", err)
		} else {
			rep.Spliced, rep.RandomModel = sp, random
		}
	}
	meta := map[string]string{"k": strconv.Itoa(cfg.K), "data": in.desc, "format": "perceiverkit-sae/1 (TopK; W_dec columns unit norm)"}
	if err := model.Save(weightsPath, meta); err != nil {
		return err
	}
	raw, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := outfile.WriteFile(reportPath+".tmp", append(raw, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.Rename(reportPath+".tmp", reportPath); err != nil {
		return err
	}
	os.RemoveAll(partial)
	fmt.Fprintf(stdout, "wrote %s and %s: %s\n", weightsPath, reportPath, in.desc)
	fmt.Fprintf(stdout, "train   fvu %.4f  mse %.5g  l0 %.2f  dead %.1f%%  (%d samples)\n", rep.Train.FVU, rep.Train.MSE, rep.Train.L0, 100*rep.Train.DeadFraction, rep.Train.Rows)
	if rep.Holdout != nil {
		fmt.Fprintf(stdout, "holdout fvu %.4f  mse %.5g  l0 %.2f  dead %.1f%%  (%d samples)\n", rep.Holdout.FVU, rep.Holdout.MSE, rep.Holdout.L0, 100*rep.Holdout.DeadFraction, rep.Holdout.Rows)
	}
	if sp := rep.Spliced; sp != nil {
		fmt.Fprintf(stdout, "spliced %s on %d holdout images: accuracy %.3f → %.3f with the reconstruction, predictions agree on %.1f%%\n",
			sp.Kind, sp.Rows, sp.Original, sp.Reconstructed, 100*sp.Agreement)
	}
	fmt.Fprintf(stdout, "%d steps in %s: %.0f samples/s on %d threads\n", st.Step, elapsed.Round(time.Millisecond), rep.SamplesPerS, rep.Threads)
	return nil
}

// sameIdentity refuses a checkpoint of another run.
func sameIdentity(path string, had, want map[string]string) error {
	var diffs []string
	keys := map[string]bool{}
	for k := range had {
		keys[k] = true
	}
	for k := range want {
		keys[k] = true
	}
	for k := range keys {
		if had[k] != want[k] {
			diffs = append(diffs, k)
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	sort.Strings(diffs)
	return fmt.Errorf("resume: %s was written by another run (%s differ); use another --out or remove its .sae.partial", path, strings.Join(diffs, ", "))
}

// checkMemory refuses sizes that do not fit in half the machine's memory.
func checkMemory(flag string, bytes int64) error {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return nil
	}
	total := int64(si.Totalram) * int64(si.Unit)
	if bytes > total/2 {
		return fmt.Errorf("%s: needs about %.1f GB, more than half of this machine's %.1f GB", flag, float64(bytes)/1e9, float64(total)/1e9)
	}
	return nil
}

// splicedTest measures, on the holdout, what is lost when the reconstruction stands in for the
// layer: for a Parquet column, a linear probe fitted on the training rows (C = 1) classifies the
// holdout rows and their reconstructions; for tokens, the model classifies the holdout images
// with their kept latents replaced by reconstructions at the layer.
func splicedTest(in *saeInput, s *sae.SAE, split sae.Split, stderr io.Writer) (*splicedResult, bool, error) {
	if in.tokens != nil {
		return splicedTokens(in, s, split, stderr)
	}
	classes := 0
	y := make([]int, len(in.labels))
	for i, l := range in.labels {
		if l < 0 {
			return nil, false, fmt.Errorf("row %q has no label", in.data.UnitID(i))
		}
		y[i] = int(l)
		classes = max(classes, int(l)+1)
	}
	if classes < 2 {
		return nil, false, fmt.Errorf("fewer than two classes")
	}
	mx := in.data.(*sae.Matrix)
	d := mx.D
	lm, _, err := linear.Fit(mx.X, d, split.Train, y, classes, 1, linear.FitOptions{})
	if err != nil {
		return nil, false, err
	}
	n := len(split.Holdout)
	orig := make([]float32, n*d)
	for i, u := range split.Holdout {
		copy(orig[i*d:], mx.X[u*d:(u+1)*d])
	}
	idx, val := make([]int32, n*s.K), make([]float32, n*s.K)
	rec := make([]float32, n*d)
	s.Encode(idx, val, orig, n)
	s.Decode(rec, idx, val, n)
	po, pr := predictLinear(lm, orig, n), predictLinear(lm, rec, n)
	res := &splicedResult{Kind: "linear_probe", Rows: n, Note: "multinomial logistic regression (C = 1) fitted on the training images' column, scored on the holdout images: the column, then its reconstruction"}
	for i, u := range split.Holdout {
		if po[i] == y[u] {
			res.Original++
		}
		if pr[i] == y[u] {
			res.Reconstructed++
		}
		if po[i] == pr[i] {
			res.Agreement++
		}
	}
	res.Original /= float64(n)
	res.Reconstructed /= float64(n)
	res.Agreement /= float64(n)
	return res, false, nil
}

func predictLinear(m *linear.Model, x []float32, n int) []int {
	lp := make([]float64, n*m.Classes)
	m.LogProbabilities(lp, x, nil)
	out := make([]int, n)
	for i := range out {
		row := lp[i*m.Classes : (i+1)*m.Classes]
		for c := range row {
			if row[c] > row[out[i]] {
				out[i] = c
			}
		}
	}
	return out
}

// splicedTokens runs the model that wrote the tokens on the holdout images twice: as is, and with
// the kept latents of the token layer replaced by their reconstructions.
func splicedTokens(in *saeInput, s *sae.SAE, split sae.Split, stderr io.Writer) (*splicedResult, bool, error) {
	t := in.tokens
	m, src, random, err := tokenModel(t)
	if err != nil {
		return nil, false, err
	}
	defer m.Close()
	byID := map[string]int{}
	for i := 0; i < src.Len(); i++ {
		byID[src.Item(i).ID] = i
	}
	D := m.Config.DLatents
	if D != t.Channels() {
		return nil, false, fmt.Errorf("the model's latents have %d channels, the tokens %d", D, t.Channels())
	}
	res := &splicedResult{Kind: "model_top1", Note: fmt.Sprintf("the model's top-1 on the holdout images, then with latents %s of state %d (%s) replaced by their reconstructions", latentList(t.Meta.Latents), t.Meta.State, t.Meta.Layer)}
	labelled := 0
	const batch = 16
	for lo := 0; lo < len(split.Holdout); lo += batch {
		units := split.Holdout[lo:min(lo+batch, len(split.Holdout))]
		var px []float32
		h, w := 0, 0
		for _, u := range units {
			i, ok := byID[t.Meta.IDs[u]]
			if !ok {
				return nil, false, fmt.Errorf("image %q is not in the source %s", t.Meta.IDs[u], t.Meta.Metadata["source.path"])
			}
			it := src.Item(i)
			var r *preprocess.Result
			if r, err = loadItem(m, it, preprocess.Options{MaxPixels: preprocess.DefaultMaxPixels}); err != nil {
				return nil, false, err
			}
			px = append(px, r.Pixels...)
			h, w = r.H, r.W
		}
		b := len(units)
		plain, err := m.Forward(px, b, h, w, core.Trace{})
		if err != nil {
			return nil, false, err
		}
		spliced, err := splicedForward(m, s, px, b, h, w, t.Meta.State, t.Meta.Latents)
		if err != nil {
			return nil, false, err
		}
		nl := len(plain.Logits) / b
		po, pr := make([]int, b), make([]int, b)
		for i := range po {
			po[i] = core.Argmax(plain.Logits[i*nl : (i+1)*nl])
			pr[i] = core.Argmax(spliced.Logits[i*nl : (i+1)*nl])
		}
		for i, u := range units {
			if po[i] == pr[i] {
				res.Agreement++
			}
			if y := t.Meta.Labels[u]; y >= 0 {
				labelled++
				if int64(po[i]) == y {
					res.Original++
				}
				if int64(pr[i]) == y {
					res.Reconstructed++
				}
			}
		}
		res.Rows += b
	}
	res.Agreement /= float64(res.Rows)
	if labelled > 0 {
		res.Original /= float64(labelled)
		res.Reconstructed /= float64(labelled)
	} else {
		res.Original, res.Reconstructed = math.NaN(), math.NaN()
	}
	if random {
		res.Note += " (random weights: accuracies carry no meaning)"
	}
	return res, random, nil
}

// splicedForward runs the model on b images with the given latents of hidden state `state`
// replaced by the autoencoder's reconstructions.
func splicedForward(m *core.Model, s *sae.SAE, px []float32, b, h, w, state int, latents []int) (*core.Output, error) {
	L, D := m.Config.NumLatents, m.Config.DLatents
	return m.Forward(px, b, h, w, core.Trace{OnHiddenState: func(st int, hidden []float32) {
		if st != state {
			return
		}
		nl := len(latents)
		x := make([]float32, b*nl*D)
		for bi := 0; bi < b; bi++ {
			for k, l := range latents {
				copy(x[(bi*nl+k)*D:], hidden[(bi*L+l)*D:(bi*L+l+1)*D])
			}
		}
		n := b * nl
		idx, val := make([]int32, n*s.K), make([]float32, n*s.K)
		rec := make([]float32, n*D)
		s.Encode(idx, val, x, n)
		s.Decode(rec, idx, val, n)
		// The hidden state flows on from this buffer: writing it splices the reconstruction in.
		for bi := 0; bi < b; bi++ {
			for k, l := range latents {
				copy(hidden[(bi*L+l)*D:(bi*L+l+1)*D], rec[(bi*nl+k)*D:])
			}
		}
	}})
}

func latentList(l []int) string {
	if len(l) > 8 {
		return fmt.Sprintf("%d…%d (%d kept)", l[0], l[len(l)-1], len(l))
	}
	s := make([]string, len(l))
	for i, v := range l {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, ",")
}

// tokenModel opens the model and source a token store was extracted with (recorded in its
// sidecar), and says whether the weights are random (the demo model's note).
func tokenModel(t *probe.Tokens) (*core.Model, probe.Source, bool, error) {
	mdir := t.Meta.Model
	srcPath := t.Meta.Metadata["source.path"]
	if mdir == "" || srcPath == "" {
		return nil, nil, false, fmt.Errorf("%s names no model or source", t.Paths[0])
	}
	m, err := core.Load(mdir)
	if err != nil {
		return nil, nil, false, fmt.Errorf("the tokens' model: %w", err)
	}
	if want := t.Meta.Identity["weights.sha256"]; want != "" {
		if got, err := sha256File(m.WeightsPath()); err != nil || got != want {
			m.Close()
			return nil, nil, false, fmt.Errorf("%s: its weights changed since the tokens were extracted", mdir)
		}
	}
	src, err := probe.OpenSource(srcPath)
	if err != nil {
		m.Close()
		return nil, nil, false, err
	}
	return m, src, randomWeights(m), nil
}

// randomWeights reports whether a model's weights say they are random (probe demo's note).
func randomWeights(m *core.Model) bool {
	p := m.WeightsPath()
	if !strings.HasSuffix(p, ".safetensors") {
		return false
	}
	f, err := weights.OpenSafetensors(p)
	if err != nil {
		return false
	}
	defer f.Close()
	return strings.Contains(strings.ToLower(f.Metadata["note"]), "random")
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/core/preprocess"
	"github.com/perceiverkit/perceiver/internal/flagcheck"
	"github.com/perceiverkit/perceiver/internal/outfile"
	"github.com/perceiverkit/perceiver/internal/progress"
	"github.com/perceiverkit/perceiver/internal/runid"
	"github.com/perceiverkit/perceiver/probe"
)

func init() {
	register("extract", "embed a data set into a Parquet file (streamed, resumable, shardable)", runExtract)
}

// errInterrupted reports a run stopped by a signal; its finished rows are kept for --resume.
var errInterrupted = errors.New("interrupted")

func runExtract(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("extract", "usage: probe extract --model DIR --data SOURCE --out FILE.parquet [--layers LIST] [--batch N] [--workers N] [--decode-mpx N] [--shard K/N] [--resume] [--quiet] [--label-field F] [--image-column C] [--label-column C] [--id-column C] [--tokens LIST [--tokens-dtype float16|float32] [--token-latents 0-511:8]]", stderr)
	var mf modelFlags
	mf.register(fs)
	precision := precisionFlag(fs)
	var sf sourceFlags
	sf.register(fs)
	data := fs.String("data", "", dataUsage)
	out := fs.String("out", "", "output Parquet file")
	layers := fs.String("layers", "", "representations to store, comma-separated: cross_mean, block{b}_mean, layer{j}_mean, …_max, decoder, logits, or all (default decoder,block{last}_mean)")
	batch := fs.Int("batch", 4, "images per forward pass")
	workers := fs.Int("workers", runtime.GOMAXPROCS(0), "goroutines decoding and preprocessing images")
	shardFlag := fs.String("shard", "", "process shard K/N only (deterministic 1/N of the items) and write FILE-part-K-of-N; default from JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID")
	shards := fs.Int("shards", 0, "shard count N to pair with JOB_COMPLETION_INDEX (default: JOB_COMPLETIONS)")
	resume := fs.Bool("resume", false, "continue an interrupted run (or complete an existing file), skipping ids already written")
	quiet := fs.Bool("quiet", false, "no progress bar")
	rowGroupMB := fs.Float64("row-group-mb", 64, "rows buffered before a row group is written (MB)")
	tokensFlag := fs.String("tokens", "", "also store every latent token of these layers (cross, block{b}, layer{j}; comma-separated) as FILE.tokens/NAME.bin [rows, latents, channels] + NAME.json")
	tokensDType := fs.String("tokens-dtype", probe.TokensFloat16, "value type of the token arrays: float16 or float32")
	tokenLatents := fs.String("token-latents", "all", "latents kept in the token arrays: all, or indices and ranges lo-hi[:step], e.g. 0-511:8")
	decodeMpx := fs.Float64("decode-mpx", defaultDecodeMpx, "million pixels being decoded at once over all workers (an image larger than this decodes alone)")
	if err := parseFlags(fs, args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 || *data == "" || *out == "" {
		return badUsage(fs, "data", "out")
	}
	if *batch < 1 || *workers < 1 || !(*rowGroupMB > 0) || !(*decodeMpx > 0) {
		return fmt.Errorf("--batch, --workers, --row-group-mb and --decode-mpx must be positive")
	}
	if err := flagcheck.Count("--workers", int64(*workers), maxWorkers); err != nil {
		return err
	}
	if err := flagcheck.Bytes("--row-group-mb", *rowGroupMB, *rowGroupMB*(1<<20)*2); err != nil { // a buffer and the group being written
		return err
	}

	shard := probe.Whole
	if *shardFlag != "" {
		s, err := probe.ParseShard(*shardFlag)
		if err != nil {
			return err
		}
		shard = s
	} else if s, ok, err := probe.ShardFromEnv(os.Getenv, *shards); err != nil {
		return err
	} else if ok {
		shard = s
	}
	path := *out
	if shard.N > 1 {
		path = probe.PartPath(*out, shard)
	}

	src, err := sf.open(*data)
	if err != nil {
		return err
	}
	if src.Len() == 0 {
		return fmt.Errorf("%s: no items; nothing written", *data)
	}
	// Labels are class indices: a negative one would fail linear later and read as "missing" in
	// export, so it is refused before any work.
	for i := 0; i < src.Len(); i++ {
		if it := src.Item(i); shard.Contains(i) && it.HasLabel && it.Label < 0 {
			return fmt.Errorf("%s: item %q has label %d; labels are class indices ≥ 0 (leave the label empty for an unlabelled item)", *data, it.ID, it.Label)
		}
	}
	m, err := mf.open(stderr)
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
	list := *layers
	if list == "" {
		list = m.Config.DefaultRepresentations()
	}
	reps, err := m.Config.ParseRepresentations(list)
	if err != nil {
		return err
	}
	cols := make([]probe.Column, len(reps))
	names := make([]string, len(reps))
	for i, r := range reps {
		cols[i] = probe.Column{Name: r.Name, Dim: r.Dim, Description: r.Description(&m.Config)}
		names[i] = r.Name
	}
	meta, err := extractMetadata(m, mf.model, *data, src, shard, strings.Join(names, ","))
	if err != nil {
		return err
	}
	identity := runIdentity
	var tokenLayers []tokenLayer
	var keptLatents []int
	if *tokensFlag != "" {
		if *tokensDType != probe.TokensFloat16 && *tokensDType != probe.TokensFloat32 {
			return fmt.Errorf("--tokens-dtype %q: want float16 or float32", *tokensDType)
		}
		if tokenLayers, err = parseTokenLayers(*tokensFlag, &m.Config); err != nil {
			return err
		}
		if keptLatents, err = probe.ParseLatentSelection(*tokenLatents, m.Config.NumLatents); err != nil {
			return err
		}
		var ln []string
		for _, tl := range tokenLayers {
			ln = append(ln, tl.name)
		}
		meta["tokens"] = fmt.Sprintf("layers=%s dtype=%s latents=%s", strings.Join(ln, ","), *tokensDType, *tokenLatents)
		identity = append(slices.Clone(runIdentity), "tokens")
	}
	// --out newdir/f.parquet: make newdir, as the folder-writing commands do for --out, rather
	// than fail on the store's lock file inside a folder that is not there.
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("--out %s: cannot create its folder: %w", *out, err)
	}
	// The store renames its result over path: a symlink or device there must stay.
	if err := outfile.CheckTarget(path); err != nil {
		return err
	}
	w, err := probe.Create(path, cols, probe.WriterOptions{
		RowGroupBytes: int64(*rowGroupMB * (1 << 20)),
		Resume:        *resume,
		Metadata:      meta,
		Identity:      identity,
		Notify:        func(msg string) { fmt.Fprintln(stderr, "probe extract:", msg) },
	})
	var mismatch *probe.RunMismatchError
	if errors.As(err, &mismatch) && slices.Contains(mismatch.Keys, "source.digest") && !slices.Contains(mismatch.Keys, "source.path") {
		return fmt.Errorf("%s: the source changed since the earlier run (items, order or labels differ): %w", *data, err)
	}
	if err != nil {
		return err
	}

	var sink *tokenSink
	if len(tokenLayers) > 0 {
		sink, err = openTokenSink(path, m, mf.model, meta, identity, tokenLayers, keptLatents, *tokensDType, *resume, stderr)
		if err != nil {
			w.Abort()
			return err
		}
	}

	var todo []int
	already := 0
	members := shard.Members(src) // by index, or whole tar files (WebDataset)
	for _, i := range members {
		if id := src.Item(i).ID; w.Done(id) && sink.done(id) {
			already++
			continue
		}
		todo = append(todo, i)
	}
	if shard.N > 1 {
		fmt.Fprintf(stderr, "probe extract: shard %s: %s\n", shard, shard.Plan(src))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var barOut io.Writer = stderr
	if *quiet {
		barOut = nil
	}
	bar := progress.New(barOut, int64(len(todo)), "extract", progress.Unit("img"))
	skips := preprocess.NewSkips(stderr)
	start := time.Now()
	budget := newPixelBudget(int64(*decodeMpx * 1e6))
	done, forward, runErr := extractItems(ctx, m, src, todo, reps, w, sink, *batch, *workers, budget, mf.decodeOptions(), skips, bar)
	bar.Finish()
	elapsed := time.Since(start)

	if runErr == nil && done == 0 && already == 0 && len(todo) > 0 {
		// Every item failed: an empty file would look like a finished run.
		if err := w.Discard(); err != nil {
			fmt.Fprintf(stderr, "probe extract: %v\n", err)
		}
		sink.discard()
		why := ""
		if list := skips.List(); len(list) > 0 {
			why = fmt.Sprintf(" (the first: %v)", list[0].Err)
		}
		return fmt.Errorf("all %d items failed%s; nothing written to %s", len(todo), why, path)
	}

	if runErr != nil {
		// Keep every finished row for --resume; the output path is never left half-written.
		if err := w.Abort(); err != nil {
			fmt.Fprintf(stderr, "probe extract: keeping finished rows: %v\n", err)
		}
		if err := sink.abort(); err != nil {
			fmt.Fprintf(stderr, "probe extract: keeping finished tokens: %v\n", err)
		}
		if errors.Is(runErr, errInterrupted) {
			return fmt.Errorf("interrupted after %d new rows; run the same command with --resume to finish %s", done, path)
		}
		return runErr
	}
	// The output must hold every item of the shard that could be read: a row lost on the way (a
	// checkpoint replaced by a writer that lost its lock) fails the merge instead.
	w.Expect(len(members) - skips.Count())
	if err := w.Close(); err != nil {
		sink.abort()
		return err
	}
	if err := sink.close(stdout); err != nil {
		return err
	}
	rate := float64(done) / elapsed.Seconds()
	fmt.Fprintf(stdout, "wrote %s: %d new rows, %d already present, %d skipped bad files, %s (%.2f images/s, %.1f%% of the time in the forward pass)\n",
		path, done, already, skips.Count(), elapsed.Round(time.Millisecond), rate, 100*forward.Seconds()/elapsed.Seconds())
	if scheme := probe.LabelScheme(src); scheme != "" {
		fmt.Fprintf(stdout, "labels: %s\n", scheme)
	}
	if n, why := probe.SkippedFiles(src); n > 0 {
		fmt.Fprintf(stdout, "source: %s\n", why)
	}
	return nil
}

// runIdentity are the metadata keys that identify an extraction: a resume whose values differ
// would mix rows of two runs, so it is refused. The model path, program version and time may
// change between attempts.
// The source is identified by its resolved absolute path (so "data/x" and "/home/me/data/x" are
// one source) and by the digest of its item list.
var runIdentity = []string{runid.Weights, runid.Config, runid.Preprocessor, runid.SourcePath, runid.SourceDigest, "shard", runid.Layers, runid.Precision}

// defaultDecodeMpx bounds the pixels being decoded at once: an image at preprocess's limit
// (DefaultMaxPixels, ~89.5 million) fits alone, and ordinary photos decode many at a time.
const defaultDecodeMpx = 100

// decodePeak records the most pixels decoding at once, for tests.
var decodePeak atomic.Int64

// extractItems decodes and preprocesses the items on worker goroutines and runs the model on
// batches as they fill, writing one row per image. It returns how many rows it wrote and the time
// spent in forward passes.
//
// Decoding a large image takes memory in proportion to its pixels, so besides the worker count
// the pixels being decoded at once are bounded by budget (a FIFO weighted semaphore, so a large
// image waits its turn and then runs alone, not starved by small ones).
func extractItems(ctx context.Context, m *core.Model, src probe.Source, todo []int, reps []core.Representation,
	w *probe.Writer, sink *tokenSink, batch, workers int, budget *pixelBudget, opt preprocess.Options, skips *preprocess.Skips, bar *progress.Bar) (int, time.Duration, error) {
	type prepared struct {
		item probe.Item
		res  *preprocess.Result
	}
	type job struct {
		item   probe.Item
		weight int64 // pixel budget taken by the stream for item.Data
		pixels int64 // item.Data's pixels, from its header
	}
	jobs := make(chan job)
	ready := make(chan prepared, 2*batch)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// The stream reads containers (tar shards, Parquet row groups) sequentially in this one
	// goroutine; an encoded image read into memory takes its share of the pixel budget here, before
	// it is handed on, so the data waiting for a worker is bounded by --decode-mpx too.
	var streamErr error
	go func() {
		defer close(jobs)
		for it, err := range src.Stream(todo) {
			if err != nil {
				streamErr = err
				cancel()
				return
			}
			j := job{item: it}
			if it.Data != nil {
				j.pixels = dataPixels(it.Data)
				j.weight = budget.weight(max(j.pixels, int64(len(it.Data))))
				if budget.sem.Acquire(ctx, j.weight) != nil {
					return
				}
			}
			select {
			case jobs <- j:
			case <-ctx.Done():
				if j.weight > 0 {
					budget.sem.Release(j.weight)
				}
				return
			}
		}
	}()
	var inflight atomic.Int64
	var wg sync.WaitGroup
	for k := 0; k < workers; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				it := j.item
				var res *preprocess.Result
				var err error
				switch {
				case it.Err != nil:
					err = it.Err
				case it.Image != nil:
					res, err = m.Preprocessor.Process(preprocess.FromImage(it.Image))
				case it.Data != nil:
					px := j.pixels
					n := inflight.Add(px)
					for p := decodePeak.Load(); n > p && !decodePeak.CompareAndSwap(p, n); p = decodePeak.Load() {
					}
					res, err = loadItem(m, it, opt)
					inflight.Add(-px)
					j.item.Data = nil
					budget.sem.Release(j.weight)
				default:
					px := imagePixels(it.Path)
					weight := budget.weight(px)
					if budget.sem.Acquire(ctx, weight) != nil {
						return
					}
					n := inflight.Add(px)
					for p := decodePeak.Load(); n > p && !decodePeak.CompareAndSwap(p, n); p = decodePeak.Load() {
					}
					res, err = m.Preprocessor.LoadImage(it.Path, opt)
					inflight.Add(-px)
					budget.sem.Release(weight)
				}
				if err != nil {
					skips.Add(it.ID, err)
					bar.Add(1)
					continue
				}
				it.Data = nil
				select {
				case ready <- prepared{it, res}:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() {
		wg.Wait()
		close(ready)
	}()

	done := 0
	var forward time.Duration
	var pending []prepared
	run := func() error {
		if len(pending) == 0 {
			return nil
		}
		h, wd := pending[0].res.H, pending[0].res.W
		n := len(pending[0].res.Pixels)
		px := make([]float32, len(pending)*n)
		for b, p := range pending {
			copy(px[b*n:], p.res.Pixels)
		}
		t0 := time.Now()
		vecs, toks, err := extractBatch(m, px, len(pending), h, wd, reps, sink)
		forward += time.Since(t0)
		if err != nil {
			return err
		}
		for b, p := range pending {
			row := make([][]float32, len(reps))
			for i, r := range reps {
				row[i] = vecs[i][b*r.Dim : (b+1)*r.Dim]
				if err := checkFinite(r.Name, row[i]); err != nil {
					return fmt.Errorf("%s: weights %s: %w; stopped before writing it (finished rows kept for --resume)", p.item.ID, m.WeightsPath(), err)
				}
			}
			if !w.Done(p.item.ID) {
				if err := w.Write(p.item.Row(row)); err != nil {
					return err
				}
			}
			if sink != nil {
				if err := sink.write(p.item, toks[b]); err != nil {
					return err
				}
			}
			done++
		}
		bar.Add(int64(len(pending)))
		pending = pending[:0]
		return nil
	}
	for p := range ready {
		if ctx.Err() != nil {
			break
		}
		pending = append(pending, p)
		if len(pending) == batch {
			if err := run(); err != nil {
				cancel()
				return done, forward, err
			}
		}
	}
	if ctx.Err() != nil {
		cancel()
		for range ready { // let the workers finish
		}
		if streamErr != nil {
			return done, forward, streamErr
		}
		return done, forward, errInterrupted
	}
	err := run()
	return done, forward, err
}

// extractMetadata describes how a file was made: the model and the exact weights (sha256), the
// config and preprocessor settings, the source, the shard, the program version and the time.
func extractMetadata(m *core.Model, model, data string, src probe.Source, shard probe.Shard, layers string) (map[string]string, error) {
	meta, err := modelIdentity(m, model)
	if err != nil {
		return nil, err
	}
	for k, v := range sourceIdentity(data, src) {
		meta[k] = v
	}
	meta["model"] = model
	meta["source"] = src.Name()
	meta["shard"] = shard.String()
	meta[runid.Layers] = layers
	meta["program"] = "perceiverkit probe " + version()
	meta["created"] = time.Now().UTC().Format(time.RFC3339)
	if p := m.WeightsPath(); p != "" {
		meta["weights"] = p
	}
	return meta, nil
}

// modelPrecision is the arithmetic of the model's packed weights (float32 or bf16, --precision),
// part of every run identity: rows computed at two precisions must not mix.
func modelPrecision(m *core.Model) string { return m.Options().Precision.String() }

// pixelBudget bounds the pixels being decoded at once.
type pixelBudget struct {
	sem  *semaphore.Weighted
	size int64
}

func newPixelBudget(pixels int64) *pixelBudget {
	pixels = max(pixels, 1)
	return &pixelBudget{sem: semaphore.NewWeighted(pixels), size: pixels}
}

// weight is what an image of px pixels takes from the budget: all of it for an image larger than
// the budget (it decodes alone), at least 1 for one whose size is unknown.
func (b *pixelBudget) weight(px int64) int64 { return max(1, min(px, b.size)) }

// resolvedPath is path made absolute with symbolic links resolved (path itself when that fails).
func resolvedPath(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return path
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		return real
	}
	return abs
}

// dataPixels reads the width and height from an encoded image's header (0 when it cannot).
func dataPixels(data []byte) int64 {
	var cfg image.Config
	var err error
	func() {
		defer func() { recover() }()
		cfg, _, err = image.DecodeConfig(bytes.NewReader(data))
	}()
	if err != nil || cfg.Width <= 0 || cfg.Height <= 0 {
		return 0
	}
	return int64(cfg.Width) * int64(cfg.Height)
}

// imagePixels reads the width and height from an image file's header (0 when it cannot: the
// decoder then reports the file).
func imagePixels(path string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	var cfg image.Config
	func() {
		defer func() { recover() }() // a hostile header must not stop the run; LoadImage reports it
		cfg, _, err = image.DecodeConfig(bufio.NewReader(f))
	}()
	if err != nil || cfg.Width <= 0 || cfg.Height <= 0 {
		return 0
	}
	return int64(cfg.Width) * int64(cfg.Height)
}

func sha256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// version is the module version the binary was built from ("(devel)" in a work tree).
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.Main.Version
	}
	return "(unknown)"
}

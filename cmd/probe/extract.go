package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/core/preprocess"
	"github.com/perceiverkit/perceiver/internal/outfile"
	"github.com/perceiverkit/perceiver/internal/progress"
	"github.com/perceiverkit/perceiver/probe"
)

func init() {
	register("extract", "embed a data set into a Parquet file (streamed, resumable, shardable)", runExtract)
}

// errInterrupted reports a run stopped by a signal; its finished rows are kept for --resume.
var errInterrupted = errors.New("interrupted")

func runExtract(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("extract", "usage: probe extract --model DIR --data SOURCE --out FILE.parquet [--layers LIST] [--batch N] [--workers N] [--shard K/N] [--resume] [--quiet]", stderr)
	var mf modelFlags
	mf.register(fs)
	data := fs.String("data", "", "data set: an image folder (class/xxx.jpg or flat), a .csv/.tsv manifest (path[,label][,split]), or IDX files (MNIST format)")
	out := fs.String("out", "", "output Parquet file")
	layers := fs.String("layers", "", "representations to store, comma-separated: cross_mean, block{b}_mean, layer{j}_mean, …_max, decoder, logits, or all (default decoder,block{last}_mean)")
	batch := fs.Int("batch", 4, "images per forward pass")
	workers := fs.Int("workers", runtime.GOMAXPROCS(0), "goroutines decoding and preprocessing images")
	shardFlag := fs.String("shard", "", "process shard K/N only (deterministic 1/N of the items) and write FILE-part-K-of-N; default from JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID")
	shards := fs.Int("shards", 0, "shard count N to pair with JOB_COMPLETION_INDEX (default: JOB_COMPLETIONS)")
	resume := fs.Bool("resume", false, "continue an interrupted run (or complete an existing file), skipping ids already written")
	quiet := fs.Bool("quiet", false, "no progress bar")
	rowGroupMB := fs.Float64("row-group-mb", 64, "rows buffered before a row group is written (MB)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 || *data == "" || *out == "" {
		fs.Usage()
		return errUsage
	}
	if *batch < 1 || *workers < 1 || !(*rowGroupMB > 0) {
		return fmt.Errorf("--batch, --workers and --row-group-mb must be positive")
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

	src, err := probe.OpenSource(*data)
	if err != nil {
		return err
	}
	m, err := mf.open(stderr)
	if err != nil {
		return err
	}
	defer m.Close()
	list := *layers
	if list == "" {
		list = m.Config.DefaultRepresentations()
	}
	reps, err := m.Config.ParseRepresentations(list)
	if err != nil {
		return err
	}
	cols := make([]probe.Column, len(reps))
	for i, r := range reps {
		cols[i] = probe.Column{Name: r.Name, Dim: r.Dim, Description: r.Description(&m.Config)}
	}
	meta, err := extractMetadata(m, mf.model, src, shard, list)
	if err != nil {
		return err
	}
	// The store renames its result over path: a symlink or device there must stay.
	if err := outfile.CheckTarget(path); err != nil {
		return err
	}
	w, err := probe.Create(path, cols, probe.WriterOptions{
		RowGroupBytes: int64(*rowGroupMB * (1 << 20)),
		Resume:        *resume,
		Metadata:      meta,
	})
	if err != nil {
		return err
	}

	var todo []int
	already := 0
	for i := 0; i < src.Len(); i++ {
		if !shard.Contains(i) {
			continue
		}
		if w.Done(src.Item(i).ID) {
			already++
			continue
		}
		todo = append(todo, i)
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
	done, forward, runErr := extractItems(ctx, m, src, todo, reps, w, *batch, *workers, mf.decodeOptions(), skips, bar)
	bar.Finish()
	elapsed := time.Since(start)

	if runErr != nil {
		// Keep every finished row for --resume; the output path is never left half-written.
		if err := w.Abort(); err != nil {
			fmt.Fprintf(stderr, "probe extract: keeping finished rows: %v\n", err)
		}
		if errors.Is(runErr, errInterrupted) {
			return fmt.Errorf("interrupted after %d new rows; run the same command with --resume to finish %s", done, path)
		}
		return runErr
	}
	if err := w.Close(); err != nil {
		return err
	}
	rate := float64(done) / elapsed.Seconds()
	fmt.Fprintf(stdout, "wrote %s: %d new rows, %d already present, %d skipped bad files, %s (%.2f images/s, %.1f%% of the time in the forward pass)\n",
		path, done, already, skips.Count(), elapsed.Round(time.Millisecond), rate, 100*forward.Seconds()/elapsed.Seconds())
	return nil
}

// extractItems decodes and preprocesses the items on worker goroutines and runs the model on
// batches as they fill, writing one row per image. It returns how many rows it wrote and the time
// spent in forward passes.
func extractItems(ctx context.Context, m *core.Model, src probe.Source, todo []int, reps []core.Representation,
	w *probe.Writer, batch, workers int, opt preprocess.Options, skips *preprocess.Skips, bar *progress.Bar) (int, time.Duration, error) {
	type prepared struct {
		item probe.Item
		res  *preprocess.Result
	}
	jobs := make(chan int)
	ready := make(chan prepared, 2*batch)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	go func() {
		defer close(jobs)
		for _, i := range todo {
			select {
			case jobs <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for k := 0; k < workers; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				it := src.Item(i)
				var res *preprocess.Result
				var err error
				if it.Image != nil {
					res, err = m.Preprocessor.Process(preprocess.FromImage(it.Image))
				} else {
					res, err = m.Preprocessor.LoadImage(it.Path, opt)
				}
				if err != nil {
					skips.Add(it.ID, err)
					bar.Add(1)
					continue
				}
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
		vecs, _, err := m.Extract(px, len(pending), h, wd, reps)
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
			if err := w.Write(p.item.Row(row)); err != nil {
				return err
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
		return done, forward, errInterrupted
	}
	err := run()
	return done, forward, err
}

// extractMetadata describes how a file was made: the model and the exact weights (sha256), the
// config and preprocessor settings, the source, the shard, the program version and the time.
func extractMetadata(m *core.Model, model string, src probe.Source, shard probe.Shard, layers string) (map[string]string, error) {
	cfg, err := json.Marshal(m.Config)
	if err != nil {
		return nil, err
	}
	prep, err := json.Marshal(m.Preprocessor)
	if err != nil {
		return nil, err
	}
	meta := map[string]string{
		"model":                    model,
		"config.json":              string(cfg),
		"preprocessor_config.json": string(prep),
		"source":                   src.Name(),
		"shard":                    shard.String(),
		"layers":                   layers,
		"program":                  "perceiverkit probe " + version(),
		"created":                  time.Now().UTC().Format(time.RFC3339),
	}
	if p := m.WeightsPath(); p != "" {
		sum, err := sha256File(p)
		if err != nil {
			return nil, err
		}
		meta["weights"] = p
		meta["weights.sha256"] = sum
	}
	return meta, nil
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

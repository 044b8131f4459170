package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/perceiverkit/perceiver/explain"
	"github.com/perceiverkit/perceiver/internal/flagcheck"
	"github.com/perceiverkit/perceiver/probe/linear"
	"github.com/perceiverkit/perceiver/serve"
)

func init() {
	register("serve", "explore images, attention maps, latents and probe results in the browser", runServe)
}

// serveContext ends the server: an interrupt or SIGTERM, or a test's cancel.
var serveContext = func() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func runServe(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", "usage: probe serve (--model DIR | --random) [--images DIR] [--features FILE|DIR] [--sae DIR] [--addr HOST:PORT]", stderr)
	var mf modelFlags
	mf.register(fs)
	precision := precisionFlag(fs)
	random := fs.Bool("random", false, "use the full-size architecture with random weights (seed 1) instead of --model: the page at its real size, without a download")
	arch := archFlag(fs)
	images := fs.String("images", "", "folder of images to browse (subfolders too); names never resolve outside it")
	features := fs.String("features", "", "Parquet file, or folder of part files, written by probe extract: adds the probe report and a PCA scatter")
	saeDir := fs.String("sae", "", "folder written by probe sae train, after probe sae features: adds the dictionary's features view")
	addr := fs.String("addr", "127.0.0.1:0", "address to listen on; the default is the loopback address on a free port. Another host is reachable from the network: the server has no authentication")
	cacheMB := fs.Int64("cache-mb", serve.DefaultCacheBytes>>20, "memory for cached analyses, in MB (the full-size model needs about 103 MB per image)")
	queueLen := fs.Int("queue", serve.DefaultQueueLen, "analyses and class-specific maps that may wait behind the running one; more get 503 with Retry-After")
	def := explain.DefaultOptions()
	steps := fs.Int("steps", def.Steps, "integrated gradients: Gauss–Legendre nodes, a backward pass each (as probe explain)")
	samples := fs.Int("samples", def.Samples, "smoothgrad: noisy samples, a backward pass each (as probe explain)")
	allowMixed := allowMixedFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 || *random == (mf.model != "") {
		return badUsage(fs, "model|random")
	}
	if *cacheMB < 1 || *queueLen < 1 || *steps < 1 || *samples < 1 {
		return fmt.Errorf("--cache-mb, --queue, --steps and --samples must be at least 1")
	}
	if err := flagcheck.Count("--queue", int64(*queueLen), maxQueue); err != nil {
		return err
	}
	if err := flagcheck.Count("--steps", int64(*steps), maxSteps); err != nil {
		return err
	}
	if err := flagcheck.Bytes("--cache-mb", *cacheMB, float64(*cacheMB)*(1<<20)); err != nil {
		return err
	}
	def.Steps, def.Samples = *steps, *samples
	kinds, err := serveKinds(def)
	if err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		return fmt.Errorf("--addr %q: want HOST:PORT (e.g. 127.0.0.1:8080): %v", *addr, err)
	}
	loopback := isLoopback(host)
	if !loopback {
		fmt.Fprintf(stderr, "warning: --addr %s is reachable from other machines; the explorer has no authentication and shows every image under --images\n", *addr)
	}

	var feat *serve.Features
	if *features != "" {
		if feat, err = loadServeFeatures(*features, *allowMixed, stderr); err != nil {
			return err
		}
	}
	m, name, err := mf.openOrRandomNamed(*random, *arch, stderr)
	if err != nil {
		return err
	}
	defer m.Close()
	if err := flagcheck.Bytes("--samples", *samples, flagcheck.Mul(float64(*samples), imageValues(m), 4)); err != nil {
		return err
	}
	if err := applyPrecision(m, *precision, stderr); err != nil {
		return err
	}
	var saeView *serve.SAE
	if *saeDir != "" {
		if saeView, err = serveSAE(*saeDir, m); err != nil {
			return err
		}
	}
	srv, err := serve.New(m, serve.Options{
		Images: *images, ModelName: name, Decode: mf.decodeOptions(), Features: feat, Kinds: kinds, SAE: saeView,
		Cache: *cacheMB << 20, QueueLen: *queueLen, LocalOnly: loopback,
		Log: log.New(stderr, "probe serve: ", log.LstdFlags),
	})
	if err != nil {
		return err
	}
	defer srv.Close()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("--addr %s: %w", *addr, err)
	}
	fmt.Fprintln(stdout, serveURL(ln.Addr().(*net.TCPAddr)))
	if f, ok := stdout.(*os.File); ok {
		f.Sync()
	}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute, // a 20 MB upload over a slow link
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          log.New(stderr, "probe serve: ", log.LstdFlags),
	}
	ctx, stop := serveContext()
	defer stop()
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutdown); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// serveKinds are serve's registered kinds with the class-specific ones of package explain
// computed with opt (the --steps and --samples flags).
func serveKinds(opt explain.Options) ([]serve.Kind, error) {
	kinds := serve.Kinds()
	for i, k := range kinds {
		if slices.Contains(serve.ExplainMethods, k.Name) {
			var err error
			if kinds[i], err = serve.ExplainKind(k.Name, opt); err != nil {
				return nil, err
			}
		}
	}
	return kinds, nil
}

// isLoopback reports whether a listen host stays on this machine: localhost or a loopback IP.
// The empty host and 0.0.0.0 listen on every interface.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// serveURL is the address to open: the loopback address when listening on every interface.
func serveURL(a *net.TCPAddr) string {
	ip := a.IP
	if ip == nil || ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return "http://" + net.JoinHostPort(ip.String(), fmt.Sprint(a.Port)) + "/"
}

// loadServeFeatures reads stored embeddings with their labels for the probe report, as probe
// linear does with its defaults.
func loadServeFeatures(path string, allowMixed bool, stderr io.Writer) (*serve.Features, error) {
	r, err := openFeatures(path, allowMixed, stderr)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	tab, err := r.Load()
	if err != nil {
		return nil, err
	}
	lt, dropped, err := linearTable(tab, "label", "split")
	if err != nil {
		return nil, fmt.Errorf("--features %s: %w", path, err)
	}
	if dropped > 0 {
		fmt.Fprintf(stderr, "--features: %d rows without a label left out\n", dropped)
	}
	cfg := linear.Config{}
	if lpb := layersPerBlock(r.Metadata()); lpb > 0 {
		cfg.LayersPerBlock = lpb
	}
	return &serve.Features{Source: path, Table: lt, Config: cfg}, nil
}

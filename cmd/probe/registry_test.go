//go:build unix

package main

// Tests driven by the command registry (commands in main.go): every registered command, including
// ones added later, is walked; nothing lists the commands by hand except the arguments a command
// needs to reach its work (commandArgs), and a command missing there fails the test by name.

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// flagLine is one flag of PrintDefaults: "  -name type".
var flagLine = regexp.MustCompile(`(?m)^  -([a-zA-Z0-9-]+)(?: (\w+))?`)

// commandFlags returns a command's flags and their types ("" for a bool), read from its -h.
func commandFlags(t *testing.T, name string, sub ...string) map[string]string {
	t.Helper()
	_, stderr, _ := runCapture(append(append([]string{name}, sub...), "-h"))
	flags := map[string]string{}
	for _, m := range flagLine.FindAllStringSubmatch(stderr, -1) {
		flags[m[1]] = m[2]
	}
	return flags
}

// numericTypes are the flag types whose values set sizes or counts.
var numericTypes = map[string]string{
	"int":    fmt.Sprint(math.MaxInt64),
	"int64":  fmt.Sprint(math.MaxInt64),
	"uint":   fmt.Sprint(uint64(math.MaxUint64)),
	"uint64": fmt.Sprint(uint64(math.MaxUint64)),
	"float":  "1e300",
}

// walkFixtures are the inputs the walked commands read, made once.
type walkFixtures struct {
	dir, data, features string
}

// commandArgs are the arguments with which a command reaches its work on the tiny models (the
// numeric flag under test is appended). A registered command without an entry fails the walk: add
// one when registering a command (nil for a command without numeric flags).
func commandArgs(name string, fx walkFixtures, out string) ([]string, bool) {
	img := filepath.Join(tinyDir, "chelsea.png")
	f1, f2 := filepath.Join(tinyFlowDir, "frame1.png"), filepath.Join(tinyFlowDir, "frame2.png")
	m := map[string][]string{
		"ablate":       {"--model", tinyDir, "--image", img, "--out", out, "--quiet"},
		"attention":    {"--model", tinyDir, "--image", img, "--out", out},
		"bench":        {"--model", tinyDir},
		"classify":     {"--model", tinyDir, img},
		"demo":         nil,
		"dump":         {"--model", tinyDir, "--image", img, "--out", filepath.Join(out, "d.safetensors"), "--grads"},
		"explain":      {"--model", tinyDir, "--image", img, "--out", out, "--methods", "saliency,integrated-gradients,smoothgrad,occlusion", "--window", "4", "--stride", "4"},
		"extract":      {"--model", tinyDir, "--data", fx.data, "--out", filepath.Join(out, "f.parquet"), "--layers", "decoder", "--quiet"},
		"faithfulness": {"--model", tinyDir, "--data", fx.data, "--methods", "saliency,occlusion", "--out", out, "--quiet", "--window", "4", "--stride", "4", "--limit", "2"},
		"flow":         {"--model", tinyFlowDir, "--frame1", f1, "--frame2", f2, "--out", out},
		"layers":       {"--model", tinyDir},
		"linear":       {"--features", fx.features, "--split-col", "none", "--C", "1", "--report", out},
		"export":       {"--features", fx.features, "--out", out, "--format", "clip-retrieval", "--columns", "decoder"},
		"precision":    {"--model", tinyDir, "--data", fx.data, "--out", out, "--limit", "2"},
		"sae":          {"train", "--features", fx.features, "--column", "decoder", "--out", out, "--epochs", "1", "--dict", "16", "--k", "2", "--batch", "8", "--quiet"},
		"sanity":       {"--model", tinyDir, "--image", img, "--methods", "saliency", "--out", out},
		"train":        {"--model", tinyDir, "--data", fx.data, "--out", out, "--steps", "1", "--batch", "4"},
		"serve":        {"--model", tinyDir, "--features", fx.features, "--addr", "127.0.0.1:0"},
		"similarity":   {"--features", fx.features, "--out", out, "--method", "rsa"},
	}
	args, ok := m[name]
	return args, ok
}

// crashSigns are what Go prints when a process dies of an allocation or a panic.
var crashSigns = []string{"fatal error:", "panic:", "goroutine ", "runtime: out of memory", "SIGSEGV"}

// TestEveryNumericFlagHuge runs every registered command with each of its numeric flags set to
// the largest value of its type, in a child process whose address space is capped: none may crash
// (out of memory, panic) or run on; each either finishes or refuses in one line naming the flag
// (issue 23 item 8: flag sizes are checked against a memory estimate before allocating).
func TestEveryNumericFlagHuge(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every command once per numeric flag")
	}
	dir := t.TempDir()
	fx := walkFixtures{dir: dir, data: filepath.Join(dir, "data"), features: filepath.Join(dir, "f.parquet")}
	writeIDX(t, fx.data, 30, 1, 3) // 3 classes of 10: enough for linear's splits
	runOK(t, "extract", "--model", tinyDir, "--data", fx.data, "--out", fx.features, "--layers", "decoder,block1_mean", "--quiet")
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		flags := commandFlags(t, name)
		var numeric []string
		for f, typ := range flags {
			if _, ok := numericTypes[typ]; ok {
				numeric = append(numeric, f)
			}
		}
		slices.Sort(numeric)
		base, ok := commandArgs(name, fx, "")
		if !ok {
			t.Errorf("command %q is registered but commandArgs has no arguments for it: add them so its numeric flags %v are walked", name, numeric)
			continue
		}
		if base == nil && len(numeric) > 0 {
			t.Errorf("command %q has numeric flags %v but commandArgs gives it no arguments", name, numeric)
		}
		var subFlags map[string]map[string]string // a command with subcommands: each one's flags
		if name == "sae" {
			subFlags = map[string]map[string]string{"train": commandFlags(t, "sae", "train"), "encode": commandFlags(t, "sae", "encode"), "features": commandFlags(t, "sae", "features")}
		}
		for _, f := range numeric {
			out := filepath.Join(dir, name+"-"+f)
			os.MkdirAll(out, 0o755)
			rest, _ := commandArgs(name, fx, out)
			var sub []string
			if subFlags != nil {
				// The subcommand that has the flag, with the arguments that reach its work.
				switch {
				case subFlags["train"][f] != "":
					sub, rest = rest[:1], rest[1:]
				case subFlags["features"][f] != "":
					sub, rest = []string{"features"}, []string{"--sae", saeFixture(t, fx), "--out", filepath.Join(out, "features")}
				case subFlags["encode"][f] != "":
					sub, rest = []string{"encode"}, []string{"--sae", saeFixture(t, fx), "--out", filepath.Join(out, "codes.parquet")}
				}
			}
			for i := 0; i+1 < len(rest); i++ { // the flag under test replaces its base value
				if rest[i] == "--"+f {
					rest = append(rest[:i:i], rest[i+2:]...)
					break
				}
			}
			// The flag goes first: flags after a positional argument are not parsed.
			args := append(append(append([]string{name}, sub...), "--"+f, numericTypes[flags[f]]), rest...)
			t.Run(name+"/"+f, func(t *testing.T) { walkOne(t, args, f) })
		}
	}
}

func walkOne(t *testing.T, args []string, flagName string) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "PROBE_HELPER_ARGS="+strings.Join(args, "\x1f"),
		"PROBE_HELPER_RLIMIT_AS="+fmt.Sprint(6<<30), "PROBE_HELPER_SERVE_EXIT=1",
		"PROBE_MEMORY_LIMIT=2G", "GOMAXPROCS=2")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%v: still running after 90 s", args)
	}
	e := stderr.String()
	for _, sign := range crashSigns {
		if strings.Contains(e, sign) {
			t.Fatalf("%v crashed:\n%.2000s", args, e)
		}
	}
	if err == nil {
		return // the value was harmless (a limit, a seed, a count capped by the data)
	}
	lines := strings.Split(strings.TrimSpace(e), "\n")
	last := lines[len(lines)-1]
	if !strings.Contains(last, "--"+flagName) {
		t.Errorf("%v: exit %v, the error does not name --%s: %q", args, err, flagName, last)
	}
}

// 8: the issue's two examples, with the memory limit set to 1 GB: a one-line refusal naming the
// flag, its value and the bytes, before the allocation.
func TestFlagSizesIssueExamples(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	writeIDX(t, data, 600, 1, 3)
	features := filepath.Join(dir, "f.parquet")
	runOK(t, "extract", "--model", tinyDir, "--data", data, "--out", features, "--layers", "decoder", "--quiet")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"explain", "--model", tinyDir, "--image", filepath.Join(tinyDir, "chelsea.png"), "--out", filepath.Join(dir, "e"), "--methods", "smoothgrad", "--samples", "2000000"}, "--samples 2000000"},
		{[]string{"similarity", "--features", features, "--method", "rsa", "--max-rows", "200000", "--out", filepath.Join(dir, "s")}, "--max-rows 200000"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
		cmd.Env = append(os.Environ(), "PROBE_HELPER_ARGS="+strings.Join(c.args, "\x1f"), "PROBE_MEMORY_LIMIT=1M", "PROBE_HELPER_RLIMIT_AS="+fmt.Sprint(6<<30))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		e := strings.TrimSpace(stderr.String())
		if err == nil || strings.Count(e, "\n") > 0 || !strings.Contains(e, c.want) || !strings.Contains(e, "bytes") {
			t.Errorf("%v: %v, %q should be one line naming %q and the bytes", c.args, err, e, c.want)
		}
	}
}

// registryFixtures makes the inputs of the registry walks: a copy of the tiny model (whose
// weights a test may swap), an IDX data set of 3 classes and its features.
func registryFixtures(t *testing.T) (walkFixtures, string) {
	t.Helper()
	dir := t.TempDir()
	model := filepath.Join(dir, "model")
	os.MkdirAll(model, 0o755)
	for _, name := range []string{"config.json", "preprocessor_config.json", "model.safetensors"} {
		b, err := os.ReadFile(filepath.Join(tinyDir, name))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(model, name), b, 0o644)
	}
	fx := walkFixtures{dir: dir, data: filepath.Join(dir, "data"), features: filepath.Join(dir, "f.parquet")}
	writeIDX(t, fx.data, 30, 1, 3)
	runOK(t, "extract", "--model", tinyDir, "--data", fx.data, "--out", fx.features, "--layers", "decoder,block1_mean", "--quiet")
	return fx, model
}

// saeFixture trains a small dictionary on fx.features once (for the sae subcommands that read one).
func saeFixture(t *testing.T, fx walkFixtures) string {
	t.Helper()
	dir := filepath.Join(fx.dir, "sae-fixture")
	if _, err := os.Stat(filepath.Join(dir, "sae.safetensors")); err == nil {
		return dir
	}
	runOK(t, "sae", "train", "--features", fx.features, "--column", "decoder", "--out", dir, "--epochs", "1", "--dict", "16", "--k", "2", "--batch", "8", "--quiet")
	return dir
}

func registeredNames() []string {
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// filesUnder lists the files and links under dir (relative), hidden ones included.
func filesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			r, _ := filepath.Rel(dir, p)
			out = append(out, r)
		}
		return nil
	})
	slices.Sort(out)
	return out
}

// TestEveryOutputThroughSafeWriter: every registered command that writes files is run once; then,
// for each file it wrote, a fresh run finds that one path planted as a symlink to a file of the
// user's (or a FIFO) and must refuse naming it, leave the user's file as it was, and write nothing
// else (no partial sets, no hang). Rule (a) of issue 23, for every command.
func TestEveryOutputThroughSafeWriter(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every command once per output")
	}
	defer func(f func() (context.Context, context.CancelFunc)) { serveContext = f }(serveContext)
	serveContext = func() (context.Context, context.CancelFunc) { // serve stops once it listens
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		return ctx, cancel
	}
	fx, _ := registryFixtures(t)
	keep := filepath.Join(fx.dir, "keep.txt")
	os.WriteFile(keep, []byte("keep me"), 0o644)
	for _, name := range registeredNames() {
		first := filepath.Join(fx.dir, "first-"+name)
		os.MkdirAll(first, 0o755)
		args, ok := commandArgs(name, fx, first)
		if !ok {
			t.Errorf("command %q is registered but commandArgs has no arguments for it", name)
			continue
		}
		if args == nil {
			continue
		}
		if _, e, code := runWithin(t, 2*time.Minute, append([]string{name}, args...)...); code != 0 {
			t.Errorf("%s: exit %d: %s", name, code, e)
			continue
		}
		wrote := filesUnder(t, first)
		for i, rel := range wrote {
			out := filepath.Join(fx.dir, fmt.Sprintf("plant-%s-%d", name, i))
			p := filepath.Join(out, rel)
			os.MkdirAll(filepath.Dir(p), 0o755)
			what := "symlink"
			if i%2 == 1 {
				what = "FIFO"
				if err := syscall.Mkfifo(p, 0o644); err != nil {
					t.Fatal(err)
				}
			} else if err := os.Symlink(keep, p); err != nil {
				t.Fatal(err)
			}
			args, _ := commandArgs(name, fx, out)
			_, e, code := runWithin(t, 2*time.Minute, append([]string{name}, args...)...)
			if code == 0 || !strings.Contains(e, rel) {
				t.Errorf("%s with %s a %s: exit %d, %q should refuse it", name, rel, what, code, e)
			}
			if left := filesUnder(t, out); len(left) != 1 {
				t.Errorf("%s with %s a %s: left %v, want only the planted one", name, rel, what, left)
			}
		}
	}
	if b, _ := os.ReadFile(keep); string(b) != "keep me" {
		t.Errorf("the user's file now holds %q", b)
	}
}

// TestEveryReaderAndResumeChecksIdentity: every registered command that reads stored features
// (--features) refuses a folder whose parts come from two models, naming weights.sha256, unless
// --allow-mixed; every command with --resume and --model refuses to resume with other weights of
// the same shapes at the same path. Rule (c) of issue 23, for every command.
func TestEveryReaderAndResumeChecksIdentity(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every reader and resumable command")
	}
	fx, model := registryFixtures(t)
	mixed := filepath.Join(fx.dir, "mixed")
	os.MkdirAll(mixed, 0o755)
	runOK(t, "extract", "--model", tinyDir, "--data", fx.data, "--out", filepath.Join(mixed, "f.parquet"), "--layers", "decoder,block1_mean", "--shard", "1/2", "--quiet")
	runOK(t, "extract", "--model", otherWeights(t), "--data", fx.data, "--out", filepath.Join(mixed, "f.parquet"), "--layers", "decoder,block1_mean", "--shard", "2/2", "--quiet")
	tiny, _ := os.ReadFile(filepath.Join(tinyDir, "model.safetensors"))
	other, _ := os.ReadFile(filepath.Join(otherWeights(t), "model.safetensors"))
	readers, resumable := 0, 0
	for _, name := range registeredNames() {
		flags := commandFlags(t, name)
		out := filepath.Join(fx.dir, "id-"+name)
		os.MkdirAll(out, 0o755)
		args, ok := commandArgs(name, fx, out)
		if !ok || args == nil {
			continue
		}
		if _, reads := flags["features"]; reads {
			readers++
			if _, ok := flags["allow-mixed"]; !ok {
				t.Errorf("%s reads --features but has no --allow-mixed (open them with openFeatures)", name)
			}
			a := slices.Clone(args)
			a[slices.Index(a, "--features")+1] = mixed
			_, e, code := runWithin(t, 2*time.Minute, append([]string{name}, a...)...)
			if code == 0 || !strings.Contains(e, "weights.sha256") || !strings.Contains(e, "f-part-2-of-2.parquet") {
				t.Errorf("%s over parts of two models: exit %d, %q should refuse naming weights.sha256 and the part", name, code, e)
			}
		}
		_, res := flags["resume"]
		_, mod := flags["model"]
		if res && mod {
			resumable++
			a := slices.Clone(args)
			a[slices.Index(a, "--model")+1] = model
			os.WriteFile(filepath.Join(model, "model.safetensors"), tiny, 0o644)
			if _, e, code := runWithin(t, 2*time.Minute, append([]string{name}, a...)...); code != 0 {
				t.Fatalf("%s: %s", name, e)
			}
			os.WriteFile(filepath.Join(model, "model.safetensors"), other, 0o644)
			_, e, code := runWithin(t, 2*time.Minute, append(append([]string{name}, a...), "--resume")...)
			if code == 0 || !strings.Contains(e, "weights.sha256") {
				t.Errorf("%s --resume with other weights: exit %d, %q should name weights.sha256", name, code, e)
			}
		}
	}
	if readers < 3 || resumable < 2 {
		t.Errorf("walked %d readers and %d resumable commands: the registry walk found too few", readers, resumable)
	}
}

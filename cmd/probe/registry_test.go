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
	"testing"
	"time"
)

// flagLine is one flag of PrintDefaults: "  -name type".
var flagLine = regexp.MustCompile(`(?m)^  -([a-zA-Z0-9-]+)(?: (\w+))?`)

// commandFlags returns a command's flags and their types ("" for a bool), read from its -h.
func commandFlags(t *testing.T, name string) map[string]string {
	t.Helper()
	_, stderr, _ := runCapture([]string{name, "-h"})
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
		"linear":       {"--features", fx.features, "--split-col", "none", "--C", "1"},
		"export":       nil,
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
		for _, f := range numeric {
			out := filepath.Join(dir, name+"-"+f)
			os.MkdirAll(out, 0o755)
			rest, _ := commandArgs(name, fx, out)
			for i := 0; i+1 < len(rest); i++ { // the flag under test replaces its base value
				if rest[i] == "--"+f {
					rest = append(rest[:i:i], rest[i+2:]...)
					break
				}
			}
			// The flag goes first: flags after a positional argument are not parsed.
			args := append([]string{name, "--" + f, numericTypes[flags[f]]}, rest...)
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

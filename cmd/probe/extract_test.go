package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/perceiverkit/perceiver/core/weights"
	"github.com/perceiverkit/perceiver/probe"
)

// imageFolder lays out an ImageFolder data set from the fixture photos, with one bad file.
func imageFolder(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"cat/chelsea.png": "../../testdata/preprocess/chelsea.png",
		"cup/coffee.png":  "../../testdata/preprocess/coffee.png",
		"man/camera.png":  "../../testdata/preprocess/camera.png",
		"man/rocket.jpg":  "../../testdata/preprocess/rocket.jpg",
	}
	for dst, src := range files {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Join(dir, filepath.Dir(dst)), 0o755)
		os.WriteFile(filepath.Join(dir, dst), data, 0o644)
	}
	os.WriteFile(filepath.Join(dir, "cat", "broken.png"), []byte("\x89PNG\r\n\x1a\n truncated"), 0o644)
	return dir
}

func loadTable(t *testing.T, path string) (*probe.Table, map[string]string) {
	t.Helper()
	r, err := probe.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	tab, err := r.Load()
	if err != nil {
		t.Fatal(err)
	}
	return tab, r.Metadata()
}

func rowOf(t *testing.T, tab *probe.Table, id, column string) []float32 {
	t.Helper()
	data, dim, err := tab.Vector(column)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.Index(tab.IDs, id)
	if i < 0 {
		t.Fatalf("no row %s in %v", id, tab.IDs)
	}
	return data[i*dim : (i+1)*dim]
}

// TestExtractEqualsDump: the values in the Parquet file equal, bit for bit, those `probe dump`
// writes for the same image (decoder = decoder_output, logits = logits, cross_mean = the mean of
// hidden_states.0 over latents, block2_max = the max of hidden_states.4).
func TestExtractEqualsDump(t *testing.T) {
	data := imageFolder(t)
	out := filepath.Join(t.TempDir(), "feat.parquet")
	stdout, stderr, code := run(t, "extract", "--model", tinyDir, "--data", data, "--out", out, "--layers", "all,block2_max", "--batch", "3", "--quiet")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "4 new rows") || !strings.Contains(stdout, "1 skipped") || !strings.Contains(stderr, "broken.png") {
		t.Errorf("summary: %q, stderr %q", stdout, stderr)
	}
	tab, meta := loadTable(t, out)
	if tab.Len() != 4 {
		t.Fatalf("%d rows, want 4", tab.Len())
	}
	dump := filepath.Join(t.TempDir(), "dump.safetensors")
	if _, e, code := run(t, "dump", "--model", tinyDir, "--image", filepath.Join(data, "cat/chelsea.png"), "--out", dump); code != 0 {
		t.Fatal(e)
	}
	f, err := weights.OpenSafetensors(dump)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	check := func(column string, want []float32) {
		got := rowOf(t, tab, "cat/chelsea.png", column)
		if !slices.Equal(got, want) {
			t.Errorf("%s differs from the dump:\n got %v\nwant %v", column, got, want)
		}
	}
	check("decoder", f.Tensors["decoder_output"].Data)
	check("logits", f.Tensors["logits"].Data)
	reduce := func(h []float32, mean bool) []float32 {
		const L, D = 8, 32
		out := make([]float32, D)
		for c := 0; c < D; c++ {
			var sum float64
			mx := float32(math.Inf(-1))
			for l := 0; l < L; l++ {
				sum += float64(h[l*D+c])
				mx = max(mx, h[l*D+c])
			}
			out[c] = mx
			if mean {
				out[c] = float32(sum / L)
			}
		}
		return out
	}
	check("cross_mean", reduce(f.Tensors["hidden_states.0"].Data, true))
	check("block1_mean", reduce(f.Tensors["hidden_states.2"].Data, true))
	check("block2_max", reduce(f.Tensors["hidden_states.4"].Data, false))

	// Labels from the sorted class folders; metadata present and valid.
	i := slices.Index(tab.IDs, "man/rocket.jpg")
	if !tab.HasLabel[i] || tab.Labels[i] != 2 || tab.LabelNames[i] != "man" {
		t.Errorf("rocket label %d %q", tab.Labels[i], tab.LabelNames[i])
	}
	var cfg map[string]any
	if err := json.Unmarshal([]byte(meta["config.json"]), &cfg); err != nil || cfg["d_latents"] != 32.0 {
		t.Errorf("config.json metadata: %v %v", err, cfg["d_latents"])
	}
	if err := json.Unmarshal([]byte(meta["preprocessor_config.json"]), &cfg); err != nil {
		t.Errorf("preprocessor metadata: %v", err)
	}
	raw, _ := os.ReadFile(filepath.Join(tinyDir, "model.safetensors"))
	sum := sha256.Sum256(raw)
	if meta["weights.sha256"] != hex.EncodeToString(sum[:]) {
		t.Errorf("weights.sha256 = %q", meta["weights.sha256"])
	}
	for _, k := range []string{"model", "program", "created", "source", "layers"} {
		if meta[k] == "" {
			t.Errorf("metadata %s missing", k)
		}
	}
	// No silent overwrite.
	if _, e, code := run(t, "extract", "--model", tinyDir, "--data", data, "--out", out, "--quiet"); code != 1 || !strings.Contains(e, "already exists") {
		t.Errorf("overwrite: exit %d, %q", code, e)
	}
}

// idxDataSet writes n random 28×28 digits with labels in the MNIST layout.
func idxDataSet(t testing.TB, n int) string {
	t.Helper()
	dir := t.TempDir()
	img := make([]byte, 16+n*28*28)
	binary.BigEndian.PutUint32(img, 0x803)
	binary.BigEndian.PutUint32(img[4:], uint32(n))
	binary.BigEndian.PutUint32(img[8:], 28)
	binary.BigEndian.PutUint32(img[12:], 28)
	lab := make([]byte, 8+n)
	binary.BigEndian.PutUint32(lab, 0x801)
	binary.BigEndian.PutUint32(lab[4:], uint32(n))
	x := uint32(12345)
	for i := range img[16:] {
		x = x*1664525 + 1013904223
		img[16+i] = byte(x >> 24)
	}
	for i := 0; i < n; i++ {
		lab[8+i] = byte(i % 10)
	}
	os.WriteFile(filepath.Join(dir, "train-images-idx3-ubyte"), img, 0o644)
	os.WriteFile(filepath.Join(dir, "train-labels-idx1-ubyte"), lab, 0o644)
	return dir
}

func sameTables(t *testing.T, got, want *probe.Table) {
	t.Helper()
	if !slices.Equal(got.IDs, want.IDs) || !slices.Equal(got.Labels, want.Labels) {
		t.Fatalf("ids or labels differ: %d vs %d rows", got.Len(), want.Len())
	}
	for _, c := range want.Columns {
		a, _, err1 := got.Vector(c.Name)
		b, _, err2 := want.Vector(c.Name)
		if err1 != nil || err2 != nil || !slices.Equal(a, b) {
			t.Fatalf("column %s differs (%v %v)", c.Name, err1, err2)
		}
	}
}

func TestExtractShardsUnionEqualsFullRun(t *testing.T) {
	data := idxDataSet(t, 50)
	dir := t.TempDir()
	full := filepath.Join(dir, "full.parquet")
	if _, e, code := run(t, "extract", "--model", tinyDir, "--data", data, "--out", full, "--layers", "all", "--quiet"); code != 0 {
		t.Fatal(e)
	}
	parts := filepath.Join(dir, "parts")
	os.Mkdir(parts, 0o755)
	for _, s := range []string{"1/3", "2/3", "3/3"} {
		if _, e, code := run(t, "extract", "--model", tinyDir, "--data", data, "--out", filepath.Join(parts, "f.parquet"), "--layers", "all", "--shard", s, "--quiet"); code != 0 {
			t.Fatal(e)
		}
	}
	if _, err := os.Stat(filepath.Join(parts, "f-part-2-of-3.parquet")); err != nil {
		t.Fatal(err)
	}
	a, _ := loadTable(t, parts)
	b, _ := loadTable(t, full)
	sameTables(t, a, b)
}

// TestExtractResumesAfterKill kills an extraction (SIGKILL, no cleanup) once some row groups are
// on disk, resumes it, and compares with an uninterrupted run row for row.
func TestExtractResumesAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a subprocess for a few seconds")
	}
	data := idxDataSet(t, 3000)
	dir := t.TempDir()
	args := []string{"extract", "--model", tinyDir, "--data", data, "--layers", "all", "--batch", "1", "--workers", "1", "--row-group-mb", "0.02", "--quiet"}
	full := filepath.Join(dir, "full.parquet")
	if _, e, code := run(t, append(args, "--out", full)...); code != 0 {
		t.Fatal(e)
	}
	out := filepath.Join(dir, "killed.parquet")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "PROBE_HELPER_ARGS="+strings.Join(append(args, "--out", out), "\x1f"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	partial := probe.PartialDir(out)
	deadline := time.Now().Add(60 * time.Second)
	for {
		chunks, _ := filepath.Glob(filepath.Join(partial, "chunk-*.parquet"))
		if len(chunks) >= 3 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("no checkpoint appeared")
		}
		time.Sleep(2 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if _, err := os.Stat(out); err == nil {
		t.Fatal("the run finished before it was killed; the test proves nothing")
	}
	_, e, code := run(t, append(args, "--out", out)...)
	if code != 1 || !strings.Contains(e, "resume") {
		t.Errorf("rerun without --resume: exit %d, %q", code, e)
	}
	stdout, e, code := run(t, append(args, "--out", out, "--resume")...)
	if code != 0 {
		t.Fatal(e)
	}
	if strings.Contains(stdout, " 0 already present") {
		t.Errorf("resume recomputed everything: %s", stdout)
	}
	a, _ := loadTable(t, out)
	b, _ := loadTable(t, full)
	sameTables(t, a, b)
	if _, err := os.Stat(partial); err == nil {
		t.Error("the checkpoint folder was left behind")
	}
}

// TestHelperProcess runs the command line in PROBE_HELPER_ARGS in a child process.
func TestHelperProcess(t *testing.T) {
	args := os.Getenv("PROBE_HELPER_ARGS")
	if args == "" {
		t.Skip("only runs as a child of TestExtractResumesAfterKill")
	}
	if as := os.Getenv("PROBE_HELPER_RLIMIT_AS"); as != "" { // an allocation past it fails at once
		n, _ := strconv.ParseUint(as, 10, 64)
		syscall.Setrlimit(syscall.RLIMIT_AS, &syscall.Rlimit{Cur: n, Max: n})
	}
	if os.Getenv("PROBE_HELPER_SERVE_EXIT") != "" { // serve stops as soon as it listens
		serveContext = func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}
	}
	code := runMain(strings.Split(args, "\x1f"), os.Stdout, os.Stderr)
	if os.Getenv("PROBE_HELPER_HWM") != "" {
		// The child's own peak: its rusage maxrss would include the parent's, inherited at exec.
		status, _ := os.ReadFile("/proc/self/status")
		for _, line := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(line, "VmHWM:") {
				fmt.Println(line)
			}
		}
	}
	os.Exit(code)
}

// TestExtractMakesOutFolder (issue 29): --out in a folder that does not exist yet creates it, and
// a second run onto the finished file is refused naming the flag that continues it, --resume.
func TestExtractMakesOutFolder(t *testing.T) {
	data := imageFolder(t)
	out := filepath.Join(t.TempDir(), "newdir", "deeper", "f.parquet")
	if _, e, code := run(t, "extract", "--model", tinyDir, "--data", data, "--out", out, "--layers", "logits", "--quiet"); code != 0 {
		t.Fatalf("exit %d: %s", code, e)
	}
	if _, err := os.Stat(out); err != nil {
		t.Fatal(err)
	}
	if _, e, code := run(t, "extract", "--model", tinyDir, "--data", data, "--out", out, "--layers", "logits", "--quiet"); code != 1 || !strings.Contains(e, "--resume") {
		t.Errorf("second run: exit %d, stderr %q; want a refusal naming --resume", code, e)
	}
}

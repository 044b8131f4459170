package main

// End-to-end tests for the extract/export defects of issue 19 (numbers as in the issue). Each
// failed before its fix.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/perceiverkit/perceiver/probe"
)

// otherWeights copies the tiny model with one weight changed in its lowest mantissa bits: the
// same shapes, other weights.
func otherWeights(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"config.json", "preprocessor_config.json", "model.safetensors"} {
		b, err := os.ReadFile(filepath.Join(tinyDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if name == "model.safetensors" {
			b[len(b)-4] ^= 0x01
		}
		os.WriteFile(filepath.Join(dir, name), b, 0o644)
	}
	return dir
}

// writeIDX writes n 28×28 images in the MNIST layout, pixel values from seed, labels i mod classes.
func writeIDX(t *testing.T, dir string, n int, seed uint32, classes int) {
	t.Helper()
	img := make([]byte, 16+n*28*28)
	binary.BigEndian.PutUint32(img, 0x803)
	binary.BigEndian.PutUint32(img[4:], uint32(n))
	binary.BigEndian.PutUint32(img[8:], 28)
	binary.BigEndian.PutUint32(img[12:], 28)
	lab := make([]byte, 8+n)
	binary.BigEndian.PutUint32(lab, 0x801)
	binary.BigEndian.PutUint32(lab[4:], uint32(n))
	x := seed
	for i := range img[16:] {
		x = x*1664525 + 1013904223
		img[16+i] = byte(x >> 24)
	}
	for i := 0; i < n; i++ {
		lab[8+i] = byte(i % classes)
	}
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "train-images-idx3-ubyte"), img, 0o644)
	os.WriteFile(filepath.Join(dir, "train-labels-idx1-ubyte"), lab, 0o644)
}

// 2, 6, 7: a resume of another run (other weights of the same shapes, a changed source, another
// source with the same ids) is refused at start, naming what differs, and the file is untouched.
func TestExtractResumeRefusesAnotherRun(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	writeIDX(t, data, 30, 1, 10)
	out := filepath.Join(dir, "f.parquet")
	args := []string{"extract", "--data", data, "--out", out, "--layers", "decoder", "--quiet"}
	if _, e, code := run(t, append(args, "--model", tinyDir)...); code != 0 {
		t.Fatal(e)
	}
	before, _ := os.ReadFile(out)
	check := func(what, want string, args ...string) {
		t.Helper()
		_, e, code := run(t, args...)
		if code == 0 || !strings.Contains(e, want) {
			t.Errorf("%s: exit %d, %q should name %q", what, code, e, want)
		}
		if after, _ := os.ReadFile(out); string(after) != string(before) {
			t.Errorf("%s: the output changed", what)
		}
		if _, err := os.Stat(probe.PartialDir(out)); err == nil {
			t.Errorf("%s: left a checkpoint folder", what)
		}
	}
	check("other weights", "weights.sha256", append(args, "--model", otherWeights(t), "--resume")...)

	// 6: the same folder, changed: more items and other labels.
	writeIDX(t, data, 40, 1, 7)
	check("changed source", "source changed", append(args, "--model", tinyDir, "--resume")...)
	writeIDX(t, data, 30, 1, 10)

	// 7: another data set with the same ids.
	other := filepath.Join(dir, "other")
	writeIDX(t, other, 30, 2, 10)
	check("other source", "source", "extract", "--data", other, "--out", out, "--layers", "decoder", "--quiet", "--model", tinyDir, "--resume")

	// The same run resumes, with the data and the model named by other paths.
	link := filepath.Join(dir, "link")
	if err := os.Symlink(data, link); err != nil {
		t.Fatal(err)
	}
	model := t.TempDir()
	for _, name := range []string{"config.json", "preprocessor_config.json", "model.safetensors"} {
		b, _ := os.ReadFile(filepath.Join(tinyDir, name))
		os.WriteFile(filepath.Join(model, name), b, 0o644)
	}
	stdout, e, code := run(t, "extract", "--data", link, "--out", out, "--layers", "decoder", "--quiet", "--model", model, "--resume")
	if code != 0 || !strings.Contains(stdout, "30 already present") {
		t.Fatalf("same run: exit %d %s %s", code, stdout, e)
	}
}

// 1: a second extract on an output being written stops at once, naming the holder.
func TestExtractLocked(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "f.parquet")
	host, _ := os.Hostname()
	holder := exec.Command("sleep", "30") // a live process on this host holds the lock
	if err := holder.Start(); err != nil {
		t.Skip("no sleep to hold a lock:", err)
	}
	defer holder.Process.Kill()
	pid := holder.Process.Pid
	os.WriteFile(probe.LockPath(out), []byte(fmt.Sprintf("%s %d\n", host, pid)), 0o644)
	_, e, code := run(t, "extract", "--model", tinyDir, "--data", idxDataSet(t, 5), "--out", out, "--resume", "--quiet")
	if code != exitLocked || !strings.Contains(e, strconv.Itoa(pid)) || !strings.Contains(e, host) {
		t.Fatalf("exit %d, %q should name pid %d on %s", code, e, pid, host)
	}
}

// 16: every item failing (a semicolon CSV, an empty IDX) exits non-zero, says why, and writes
// nothing: no output, no checkpoint folder, no lock.
func TestExtractNothingUsable(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a.png", "b.png"} {
		writePNG(t, filepath.Join(dir, name), 32, 32)
	}
	semi := filepath.Join(dir, "list.csv")
	os.WriteFile(semi, []byte("path;label\na.png;1\nb.png;2\n"), 0o644)
	empty := filepath.Join(dir, "empty")
	writeIDX(t, empty, 0, 1, 10)
	for _, c := range []struct{ data, want string }{{semi, "all 3 items failed"}, {empty, "no items"}} {
		out := filepath.Join(t.TempDir(), "f.parquet")
		_, e, code := run(t, "extract", "--model", tinyDir, "--data", c.data, "--out", out, "--quiet")
		if code == 0 || !strings.Contains(e, c.want) {
			t.Errorf("%s: exit %d, %q should say %q", c.data, code, e, c.want)
		}
		left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), "*"))
		hidden, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".*"))
		if len(left)+len(hidden) != 0 {
			t.Errorf("%s: left %q %q", c.data, left, hidden)
		}
	}
}

func writePNG(t *testing.T, path string, w, h int) {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = byte(i * 7)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// 17, 21: the summary says how labels were numbered and how many files the folder source left out.
func TestExtractSummaryLabelsAndSkipped(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"ant/a.png", "ant/b.png", "bee/c.png", "bee/d.gif", "bee/e.txt"} {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755)
		writePNG(t, filepath.Join(dir, name), 64, 64)
	}
	stdout, e, code := run(t, "extract", "--model", tinyDir, "--data", dir, "--out", filepath.Join(t.TempDir(), "f.parquet"), "--layers", "decoder", "--quiet")
	if code != 0 {
		t.Fatal(e)
	}
	for _, want := range []string{"sorted", "0=ant", "2 files left out"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("summary %q lacks %q", stdout, want)
		}
	}
}

// 18: decoding holds at most --decode-mpx million pixels at once over all workers (one larger
// image runs alone), and the rows equal those of an unbounded run.
func TestExtractBoundsDecodedPixels(t *testing.T) {
	dir := t.TempDir()
	for i := 0; i < 8; i++ {
		writePNG(t, filepath.Join(dir, fmt.Sprintf("%d.png", i)), 1000, 500) // 0.5 Mpx each
	}
	writePNG(t, filepath.Join(dir, "big.png"), 1500, 1000) // 1.5 Mpx, over the budget
	out := t.TempDir()
	decodePeak.Store(0)
	if _, e, code := run(t, "extract", "--model", tinyDir, "--data", dir, "--out", filepath.Join(out, "a.parquet"), "--layers", "decoder", "--workers", "4", "--decode-mpx", "1", "--quiet"); code != 0 {
		t.Fatal(e)
	}
	if peak := decodePeak.Load(); peak > 1500000 || peak < 1000000 {
		t.Errorf("peak of %d decoded pixels in flight, want ≤ 1,000,000 except the 1.5 Mpx image alone", peak)
	}
	if _, e, code := run(t, "extract", "--model", tinyDir, "--data", dir, "--out", filepath.Join(out, "b.parquet"), "--layers", "decoder", "--workers", "4", "--quiet"); code != 0 {
		t.Fatal(e)
	}
	a, _ := loadTable(t, filepath.Join(out, "a.parquet"))
	b, _ := loadTable(t, filepath.Join(out, "b.parquet"))
	sameTables(t, a, b)

	// The same images in a WebDataset shard: the encoded bytes the stream has read take their
	// share of the budget before a worker decodes them.
	imgs := folderImages(t, dir)
	shards := t.TempDir()
	wdsFrom(t, imgs, shards, 1, false, false)
	decodePeak.Store(0)
	if _, e, code := run(t, "extract", "--model", tinyDir, "--data", shards, "--out", filepath.Join(out, "c.parquet"), "--layers", "decoder", "--workers", "4", "--decode-mpx", "1", "--label-field", "none", "--quiet"); code != 0 {
		t.Fatal(e)
	}
	if peak := decodePeak.Load(); peak > 1500000 || peak < 1000000 {
		t.Errorf("WebDataset: peak of %d decoded pixels in flight, want ≤ 1,000,000 except the 1.5 Mpx image alone", peak)
	}
	c, _ := loadTable(t, filepath.Join(out, "c.parquet"))
	sameByFileName(t, c, a, false)
}

// 15: export refuses an existing --out, and writes through a temporary name.
func TestExportRefusesExistingOut(t *testing.T) {
	dir := t.TempDir()
	features := filepath.Join(dir, "f.parquet")
	if _, e, code := run(t, "extract", "--model", tinyDir, "--data", idxDataSet(t, 5), "--out", features, "--layers", "decoder", "--quiet"); code != 0 {
		t.Fatal(e)
	}
	csv := filepath.Join(dir, "f.csv")
	os.WriteFile(csv, []byte("precious"), 0o644)
	_, e, code := run(t, "export", "--features", features, "--format", "csv", "--out", csv)
	if b, _ := os.ReadFile(csv); code == 0 || string(b) != "precious" || !strings.Contains(e, csv) {
		t.Errorf("csv over an existing file: exit %d %q, file now %q", code, e, b)
	}
	npy := filepath.Join(dir, "arrays")
	os.MkdirAll(npy, 0o755)
	os.WriteFile(filepath.Join(npy, "labels.npy"), []byte("precious"), 0o644)
	_, e, code = run(t, "export", "--features", features, "--format", "npy", "--out", npy)
	if b, _ := os.ReadFile(filepath.Join(npy, "labels.npy")); code == 0 || string(b) != "precious" || !strings.Contains(e, "labels.npy") {
		t.Errorf("npy over an existing file: exit %d %q", code, e)
	}
	fresh := filepath.Join(dir, "fresh")
	if _, e, code := run(t, "export", "--features", features, "--format", "npy", "--out", fresh); code != 0 {
		t.Fatal(e)
	}
	names, _ := filepath.Glob(filepath.Join(fresh, "*"))
	hidden, _ := filepath.Glob(filepath.Join(fresh, ".*"))
	if len(names) != 3 || len(hidden) != 0 {
		t.Errorf("export wrote %q %q, want decoder.npy, labels.npy, ids.jsonl and no temporaries", names, hidden)
	}
}

// 15: a write that fails part way (a full disk) leaves neither the file nor its temporary.
func TestWriteNewFileFailure(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.npy")
	err := writeNewFile(path, func(w io.Writer) error {
		w.Write(make([]byte, 3<<20)) // past the buffer: bytes reach the temporary file
		return syscall.ENOSPC
	})
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), path) {
		t.Errorf("error %v should wrap ENOSPC and name %s", err, path)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("left %v", left)
	}
}

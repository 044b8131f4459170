//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// specialTargets makes, in a temporary folder, a FIFO and a symlink to a regular file, the
// non-regular targets of issue 19 item 4 (never real /dev paths). It returns their paths and the
// symlink's target, whose content must survive.
func specialTargets(t *testing.T, dir string) (fifo, link, target string) {
	t.Helper()
	fifo = filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	target = filepath.Join(dir, "precious.txt")
	if err := os.WriteFile(target, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	link = filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	return fifo, link, target
}

// checkUntouched fails unless fifo is still a FIFO, link still a symlink to target and target
// still holds "keep me".
func checkUntouched(t *testing.T, fifo, link, target string) {
	t.Helper()
	if st, err := os.Lstat(fifo); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("%s is no longer a FIFO (%v)", fifo, err)
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("%s is no longer a symlink (%v)", link, err)
	}
	if b, err := os.ReadFile(target); err != nil || string(b) != "keep me" {
		t.Errorf("%s changed: %q %v", target, b, err)
	}
}

// refuses runs args and wants a non-zero exit with a one-line error naming path.
func refuses(t *testing.T, path string, args ...string) {
	t.Helper()
	_, stderr, code := run(t, args...)
	if code == 0 {
		t.Errorf("%v: exit 0, want a refusal", args)
		return
	}
	if !strings.Contains(stderr, path) || !strings.Contains(stderr, "not a regular file") {
		t.Errorf("%v: error does not name %s as not a regular file: %s", args, path, stderr)
	}
}

// TestOutputsRefuseNonRegularTargets: every command that writes a file refuses an existing
// target that is a FIFO or a symlink, and leaves it as it was (issue 19 item 4).
func TestOutputsRefuseNonRegularTargets(t *testing.T) {
	dir := t.TempDir()
	fifo, link, target := specialTargets(t, dir)
	img := filepath.Join(tinyDir, "chelsea.png")

	for _, p := range []string{fifo, link} {
		refuses(t, p, "dump", "--model", tinyDir, "--image", img, "--out", p)
	}

	// attention: the raw tensors and each figure.
	for _, name := range []string{"maps.safetensors", "mean.png"} {
		out := filepath.Join(dir, "att-"+strings.TrimSuffix(name, filepath.Ext(name)))
		if err := os.MkdirAll(out, 0o755); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(out, name)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		refuses(t, p, "attention", "--model", tinyDir, "--image", img, "--out", out, "--raw", "--maps", "mean")
	}

	// export: the CSV file and a .npy in the output folder.
	features := filepath.Join(dir, "f.parquet")
	runOK(t, "extract", "--model", tinyDir, "--data", imageFolder(t), "--out", features, "--layers", "decoder", "--quiet")
	for _, p := range []string{fifo, link} {
		refuses(t, p, "export", "--features", features, "--columns", "decoder", "--format", "csv", "--out", p)
	}
	npyDir := filepath.Join(dir, "npy")
	os.MkdirAll(npyDir, 0o755)
	npy := filepath.Join(npyDir, "decoder.npy")
	if err := os.Symlink(target, npy); err != nil {
		t.Fatal(err)
	}
	refuses(t, npy, "export", "--features", features, "--columns", "decoder", "--format", "npy", "--out", npyDir)

	// extract's output, with --resume (without it an existing output is refused anyway).
	refuses(t, link, "extract", "--model", tinyDir, "--data", imageFolder(t), "--out", link, "--layers", "decoder", "--quiet", "--resume")

	checkUntouched(t, fifo, link, target)
}

// TestDumpRefusesDeviceNode: as root, `--out` naming a device node (a copy of /dev/null's, made
// in a temporary folder) is refused and the node stays (issue 19 item 4).
func TestDumpRefusesDeviceNode(t *testing.T) {
	dev := filepath.Join(t.TempDir(), "null")
	if err := unix.Mknod(dev, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Skipf("mknod needs root: %v", err)
	}
	refuses(t, dev, "dump", "--model", tinyDir, "--image", filepath.Join(tinyDir, "chelsea.png"), "--out", dev)
	if st, err := os.Lstat(dev); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		t.Errorf("%s is no longer a character device (%v)", dev, err)
	}
}

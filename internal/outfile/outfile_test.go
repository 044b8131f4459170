//go:build unix

package outfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestCheckTargetRefusesNonRegular(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "regular")
	os.WriteFile(regular, []byte("x"), 0o644)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	os.Symlink(regular, link)
	dangling := filepath.Join(dir, "dangling")
	os.Symlink(filepath.Join(dir, "nowhere"), dangling)

	for _, ok := range []string{regular, filepath.Join(dir, "new")} {
		if err := CheckTarget(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	kinds := map[string]string{fifo: "FIFO", link: "symbolic link", dangling: "symbolic link", dir: "directory"}
	dev := filepath.Join(dir, "null") // a copy of /dev/null's node; needs root
	if unix.Mknod(dev, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))) == nil {
		kinds[dev] = "character device"
	}
	for path, what := range kinds {
		err := CheckTarget(path)
		if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), what) {
			t.Errorf("%s: %v, want ErrNotRegular naming the path and %q", path, err, what)
		}
	}
	// Create and WriteFile refuse without touching the target.
	if _, err := Create(link); !errors.Is(err, ErrNotRegular) {
		t.Errorf("Create(symlink): %v", err)
	}
	if err := WriteFile(fifo, []byte("y"), 0o644); !errors.Is(err, ErrNotRegular) {
		t.Errorf("WriteFile(FIFO): %v", err)
	}
	if b, _ := os.ReadFile(regular); string(b) != "x" {
		t.Errorf("symlink target changed to %q", b)
	}
}

func ExampleCheckTarget() {
	dir, _ := os.MkdirTemp("", "outfile")
	defer os.RemoveAll(dir)
	os.Symlink("/etc/hostname", filepath.Join(dir, "out.safetensors"))
	err := CheckTarget(filepath.Join(dir, "out.safetensors"))
	fmt.Println(errors.Is(err, ErrNotRegular))
	// Output: true
}

// TestMissingFolderNamed (issue 29): a temporary file that cannot be made because the output's
// folder is missing is reported as that folder, not as the temporary name; other errors pass.
func TestMissingFolderNamed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "newdir", "f.safetensors")
	_, err := os.CreateTemp(filepath.Dir(path), ".f.tmp-*")
	got := MissingFolder(path, err)
	if got == nil || got.Error() != "the folder "+filepath.Dir(path)+" does not exist; create it first" {
		t.Errorf("MissingFolder = %v", got)
	}
	if !errors.Is(got, os.ErrNotExist) {
		t.Errorf("MissingFolder(%v) no longer wraps the cause", err)
	}
	other := errors.New("disk full")
	if MissingFolder(path, other) != other || MissingFolder(path, nil) != nil {
		t.Error("other errors must pass unchanged")
	}
}

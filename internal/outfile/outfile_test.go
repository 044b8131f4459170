//go:build unix

package outfile

import (
	"errors"
	"fmt"
	"io"
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

// Write replaces a regular file whole, refuses a FIFO and a symlink without opening them, and a
// failed fill leaves the old file and no temporary.
func TestWriteThroughTemporary(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.json")
	os.WriteFile(p, []byte("old"), 0o644)
	if err := Write(p, func(w io.Writer) error { w.Write([]byte("half")); return errors.New("disk full") }); err == nil {
		t.Fatal("a failed fill succeeded")
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Errorf("failed write left %q", b)
	}
	if err := WriteFile(p, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "new" {
		t.Errorf("got %q", b)
	}
	fifo := filepath.Join(dir, "fifo")
	syscall.Mkfifo(fifo, 0o644)
	link := filepath.Join(dir, "link")
	os.Symlink(p, link)
	for _, bad := range []string{fifo, link} {
		if err := WriteFile(bad, []byte("x"), 0o644); !errors.Is(err, ErrNotRegular) {
			t.Errorf("%s: %v", bad, err)
		}
		if _, err := Append(bad); !errors.Is(err, ErrNotRegular) {
			t.Errorf("Append(%s): %v", bad, err)
		}
	}
	if err := WriteNew(p, func(io.Writer) error { return nil }); !errors.Is(err, ErrExists) {
		t.Errorf("WriteNew over a file: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 0 {
		t.Errorf("temporaries left: %v", left)
	}
	if b, _ := os.ReadFile(p); string(b) != "new" {
		t.Errorf("symlink target now %q", b)
	}
}

// A Set refuses two outputs of one name, naming both inputs, and checks every target before
// the caller writes the first.
func TestSet(t *testing.T) {
	dir := t.TempDir()
	var s Set
	if err := s.AddFrom(filepath.Join(dir, "x.flo"), "x.jpg"); err != nil {
		t.Fatal(err)
	}
	err := s.AddFrom(filepath.Join(dir, "./x.flo"), "x.png")
	if err == nil || !strings.Contains(err.Error(), "x.jpg") || !strings.Contains(err.Error(), "x.png") {
		t.Errorf("clash: %v", err)
	}
	link := filepath.Join(dir, "late.png")
	os.Symlink("/etc/hostname", link)
	s.Add(filepath.Join(dir, "a.png"), link)
	if err := s.Check(); !errors.Is(err, ErrNotRegular) {
		t.Errorf("Check: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "a.png"), nil, 0o644)
	fresh := Set{Fresh: true}
	fresh.Add(filepath.Join(dir, "a.png"))
	if err := fresh.Check(); !errors.Is(err, ErrExists) {
		t.Errorf("Fresh: %v", err)
	}
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

package probe

import (
	"os"
	"path/filepath"
	"testing"
)

// Issue 23 item 13: a symbolic-link loop through an absolute link lists the same items whether
// the folder is named by a relative or an absolute path.
func TestFolderLoopSameItemsEitherPath(t *testing.T) {
	base := t.TempDir()
	loop := filepath.Join(base, "loop")
	os.MkdirAll(filepath.Join(loop, "cls"), 0o755)
	os.WriteFile(filepath.Join(loop, "cls", "a.png"), nil, 0o644)                 // listing does not decode
	if err := os.Symlink(loop, filepath.Join(loop, "cls", "again")); err != nil { // absolute
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	defer os.Chdir(wd)
	if err := os.Chdir(base); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, p := range []string{"loop", loop} {
		src, err := OpenSource(p)
		if err != nil {
			t.Fatal(err)
		}
		counts[p] = src.Len()
	}
	if counts["loop"] != counts[loop] || counts[loop] != 1 {
		t.Errorf("items: %v, want 1 either way", counts)
	}
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestModelFromHubCache lays out a Hugging Face cache the way Python's huggingface_hub does
// (refs/main → snapshots/<commit>/ with links into blobs/) and runs classify with a hub id,
// offline.
func TestModelFromHubCache(t *testing.T) {
	cache := t.TempDir()
	repo := filepath.Join(cache, "models--acme--tiny-perceiver")
	commit := "0123456789abcdef0123456789abcdef01234567"
	snap := filepath.Join(repo, "snapshots", commit)
	for _, dir := range []string{filepath.Join(repo, "blobs"), filepath.Join(repo, "refs"), snap} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(repo, "refs", "main"), []byte(commit), 0o644)
	for i, name := range []string{"config.json", "preprocessor_config.json", "model.safetensors"} {
		data, err := os.ReadFile(filepath.Join(tinyDir, name))
		if err != nil {
			t.Fatal(err)
		}
		blob := strings.Repeat(string(rune('a'+i)), 40)
		os.WriteFile(filepath.Join(repo, "blobs", blob), data, 0o644)
		if err := os.Symlink(filepath.Join("..", "..", "blobs", blob), filepath.Join(snap, name)); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("HF_HUB_CACHE", cache)
	t.Setenv("HF_HUB_OFFLINE", "1")
	out, errOut, code := run(t, "classify", "--model", "acme/tiny-perceiver", "--top", "1", filepath.Join(tinyDir, "chelsea.png"))
	if code != 0 || !strings.Contains(out, "class_1") {
		t.Fatalf("exit %d: %s %s", code, out, errOut)
	}
	_, errOut, code = run(t, "classify", "--model", "acme/other", filepath.Join(tinyDir, "chelsea.png"))
	if code != 1 || !strings.Contains(errOut, "acme/other") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("uncached id offline: exit %d, %q", code, errOut)
	}
}

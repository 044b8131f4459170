package hub

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// buildPythonCache lays out a cache exactly as huggingface_hub's
// hf_hub_download documents it (file_download.py): blobs named by etag,
// refs/main holding the commit without a newline, snapshot entries as
// relative symlinks, and a .no_exist marker for the absent safetensors file.
func buildPythonCache(t *testing.T, cache string) string {
	t.Helper()
	root := filepath.Join(cache, "models--deepmind--vision-perceiver-fourier")
	snap := filepath.Join(root, "snapshots", commitMain)
	for _, d := range []string{filepath.Join(root, "blobs"), filepath.Join(root, "refs"), snap, filepath.Join(root, ".no_exist", commitMain)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"config.json", "preprocessor_config.json", "pytorch_model.bin"} {
		if err := os.WriteFile(filepath.Join(root, "blobs", etagOf(f)), readTestdata(t, f), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("../../blobs/"+etagOf(f), filepath.Join(snap, f)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "refs", "main"), []byte(commitMain), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, ".no_exist", commitMain, "model.safetensors"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return snap
}

func TestOfflineResolvesPythonCache(t *testing.T) {
	cache := t.TempDir()
	snap := buildPythonCache(t, cache)
	// An endpoint nothing listens on: any request would fail the resolve.
	opt := Options{Endpoint: "http://127.0.0.1:1", CacheDir: cache, Offline: true}
	for _, model := range []string{perceiver, perceiver + "@main", perceiver + "@" + commitMain} {
		dir, err := Resolve(context.Background(), model, opt)
		if err != nil || dir != snap {
			t.Errorf("%s: %s, %v; want %s", model, dir, err, snap)
		}
	}
	checkSnapshot(t, opt, perceiver, snap, commitMain, "config.json", "preprocessor_config.json", "pytorch_model.bin")
}

func TestOfflineMissing(t *testing.T) {
	cache := t.TempDir()
	snap := buildPythonCache(t, cache)
	opt := Options{Endpoint: "http://127.0.0.1:1", CacheDir: cache, Offline: true}
	check := func(model, mention string) {
		t.Helper()
		_, err := Resolve(context.Background(), model, opt)
		if !errors.Is(err, ErrNotCached) {
			t.Fatalf("%s: err = %v, want ErrNotCached", model, err)
		}
		if msg := err.Error(); !strings.Contains(msg, mention) || !strings.Contains(msg, "HF_HUB_OFFLINE") {
			t.Errorf("%s: message %q should mention %q and HF_HUB_OFFLINE", model, msg, mention)
		}
	}
	check(perceiver+"@v2", `"v2"`)
	check("other/model", "other/model")
	os.Remove(filepath.Join(snap, "pytorch_model.bin"))
	check(perceiver, "pytorch_model.bin")
	os.Remove(filepath.Join(snap, "preprocessor_config.json"))
	check(perceiver, "preprocessor_config.json")
}

func TestResolveFolder(t *testing.T) {
	dir := t.TempDir()
	if got, err := Resolve(context.Background(), dir, Options{Offline: true}); err != nil || got != dir {
		t.Errorf("folder: %s, %v", got, err)
	}
	file := filepath.Join(dir, "config.json")
	os.WriteFile(file, []byte("{}"), 0o644)
	for _, bad := range []string{file, "no-slash", "./missing/folder/x", "a/b/c", ""} {
		_, err := Resolve(context.Background(), bad, Options{Offline: true})
		if !errors.Is(err, ErrBadModel) {
			t.Errorf("%q: err = %v, want ErrBadModel", bad, err)
		}
	}
}

func TestParseRepoID(t *testing.T) {
	cases := []struct {
		in, repo, rev string
		ok            bool
	}{
		{"deepmind/vision-perceiver-fourier", "deepmind/vision-perceiver-fourier", "", true},
		{"deepmind/vision-perceiver-fourier@main", "deepmind/vision-perceiver-fourier", "main", true},
		{"org/name@refs/pr/1", "org/name", "refs/pr/1", true},
		{"org/name@" + commitMain, "org/name", commitMain, true},
		{"Org_1/name.v2", "Org_1/name.v2", "", true},
		{"org/name@", "", "", false},
		{"org/name@../../x", "", "", false},
		{"org/name@a b", "", "", false},
		{"gpt2", "", "", false},
		{"a/b/c", "", "", false},
		{"./x/y", "", "", false},
		{"/abs/path", "", "", false},
		{"org/-name", "", "", false},
		{"org/na--me", "", "", false},
		{"org/na..me", "", "", false},
		{"org/", "", "", false},
	}
	for _, c := range cases {
		repo, rev, ok := ParseRepoID(c.in)
		if repo != c.repo || rev != c.rev || ok != c.ok {
			t.Errorf("ParseRepoID(%q) = %q, %q, %v; want %q, %q, %v", c.in, repo, rev, ok, c.repo, c.rev, c.ok)
		}
	}
}

func TestIsRepoIDPrefersFolder(t *testing.T) {
	wd, _ := os.Getwd()
	t.Cleanup(func() { os.Chdir(wd) })
	os.Chdir(t.TempDir())
	if !IsRepoID("org/name") {
		t.Error("org/name is an id while no such folder exists")
	}
	os.MkdirAll("org/name", 0o755)
	if IsRepoID("org/name") {
		t.Error("org/name is an existing folder, not an id")
	}
	if got, err := Resolve(context.Background(), "org/name", Options{Offline: true}); err != nil || got != "org/name" {
		t.Errorf("Resolve(existing folder) = %s, %v", got, err)
	}
}

func TestOptionsFromEnv(t *testing.T) {
	home := t.TempDir()
	hfHome := filepath.Join(home, "hf")
	os.MkdirAll(hfHome, 0o755)
	os.WriteFile(filepath.Join(hfHome, "token"), []byte("hf_fromfile\n"), 0o600)
	cases := []struct {
		env  map[string]string
		want Options
	}{
		{map[string]string{"HOME": home},
			Options{Endpoint: "https://huggingface.co", CacheDir: home + "/.cache/huggingface/hub"}},
		{map[string]string{"HOME": home, "XDG_CACHE_HOME": "/xdg"},
			Options{Endpoint: "https://huggingface.co", CacheDir: "/xdg/huggingface/hub"}},
		{map[string]string{"HOME": home, "HF_HOME": "~/hf", "HF_ENDPOINT": "https://mirror.example/", "HF_HUB_OFFLINE": "1"},
			Options{Endpoint: "https://mirror.example", CacheDir: hfHome + "/hub", Token: "hf_fromfile", Offline: true}},
		{map[string]string{"HOME": home, "HF_HOME": hfHome, "HF_HUB_CACHE": "$HOME/c", "HF_TOKEN": "hf_env", "TRANSFORMERS_OFFLINE": "yes"},
			Options{Endpoint: "https://huggingface.co", CacheDir: home + "/c", Token: "hf_env", Offline: true}},
		{map[string]string{"HOME": home, "HUGGINGFACE_HUB_CACHE": "/legacy", "HF_HUB_OFFLINE": "0"},
			Options{Endpoint: "https://huggingface.co", CacheDir: "/legacy"}},
		{map[string]string{"HOME": home, "HF_HUB_DOWNLOAD_TIMEOUT": "2.5"},
			Options{Endpoint: "https://huggingface.co", CacheDir: home + "/.cache/huggingface/hub", ReadTimeout: 2500 * time.Millisecond}},
	}
	for i, c := range cases {
		got := OptionsFromEnv(func(k string) string { return c.env[k] })
		if got != c.want {
			t.Errorf("case %d: %+v\nwant %+v", i, got, c.want)
		}
	}
}

func TestVerifyKnownDigests(t *testing.T) {
	// Well-known digests: git's blob id of "hello\n" and sha256 of "hello\n".
	f, err := os.CreateTemp(t.TempDir(), "blob")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("hello\n")
	for _, etag := range []string{"ce013625030ba8dba906f756967f9e9ca394464a", "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03", "not-a-digest"} {
		if err := verify(f, 6, etag); err != nil {
			t.Errorf("verify(%s): %v", etag, err)
		}
	}
	if err := verify(f, 6, strings.Repeat("0", 64)); !errors.Is(err, ErrChecksum) {
		t.Errorf("wrong sha256 accepted: %v", err)
	}
}

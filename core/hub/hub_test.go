package hub

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const perceiver = "deepmind/vision-perceiver-fourier"

func (h *fakeHub) options(t *testing.T) Options {
	return Options{Endpoint: h.srv.URL, CacheDir: t.TempDir(), Client: h.srv.Client()}
}

func repoRoot(opt Options, repo string) string {
	return filepath.Join(opt.CacheDir, "models--"+strings.ReplaceAll(repo, "/", "--"))
}

// checkSnapshot asserts the layout huggingface_hub would have produced: each
// file a relative symlink to ../../blobs/<etag> whose content is the fixture.
func checkSnapshot(t *testing.T, opt Options, repo, dir, commit string, files ...string) {
	t.Helper()
	want := filepath.Join(repoRoot(opt, repo), "snapshots", commit)
	if dir != want {
		t.Fatalf("dir = %s, want %s", dir, want)
	}
	for _, f := range files {
		link, err := os.Readlink(filepath.Join(dir, f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if wantLink := "../../blobs/" + etagOf(f); link != wantLink {
			t.Errorf("%s -> %s, want %s", f, link, wantLink)
		}
		got, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || !bytes.Equal(got, readTestdata(t, f)) {
			t.Errorf("%s: content differs from testdata (%v)", f, err)
		}
	}
	leftovers, _ := filepath.Glob(filepath.Join(repoRoot(opt, repo), "blobs", "*.incomplete"))
	if len(leftovers) > 0 {
		t.Errorf("leftover partial files: %v", leftovers)
	}
}

func TestDownloadBuildsPythonLayout(t *testing.T) {
	h := newFakeHub(t)
	opt := h.options(t)
	dir, err := Resolve(context.Background(), perceiver, opt)
	if err != nil {
		t.Fatal(err)
	}
	checkSnapshot(t, opt, perceiver, dir, commitMain, "config.json", "preprocessor_config.json", "pytorch_model.bin")
	root := repoRoot(opt, perceiver)
	if ref, err := os.ReadFile(filepath.Join(root, "refs", "main")); err != nil || string(ref) != commitMain {
		t.Errorf("refs/main = %q, %v; want %s", ref, err, commitMain)
	}
	if _, err := os.Stat(filepath.Join(root, ".no_exist", commitMain, "model.safetensors")); err != nil {
		t.Errorf("no .no_exist marker for model.safetensors: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "model.safetensors")); err == nil {
		t.Error("model.safetensors appeared though main lacks it")
	}
	for _, r := range h.log() {
		if r.acceptEncoding != "identity" {
			t.Errorf("%s %s sent Accept-Encoding %q, want identity", r.method, r.path, r.acceptEncoding)
		}
		if r.auth != "" {
			t.Errorf("%s %s sent Authorization without a token", r.method, r.path)
		}
	}
	gets := h.count("GET", "/")

	// A second run only asks for metadata.
	if again, err := Resolve(context.Background(), perceiver, opt); err != nil || again != dir {
		t.Fatalf("second Resolve = %s, %v", again, err)
	}
	if n := h.count("GET", "/"); n != gets {
		t.Errorf("second Resolve made %d GET requests, want none", n-gets)
	}
	// And offline the cache is enough.
	h.srv.Close()
	opt.Offline = true
	if off, err := Resolve(context.Background(), perceiver, opt); err != nil || off != dir {
		t.Fatalf("offline Resolve = %s, %v", off, err)
	}
}

func TestRevisionRefPRPrefersSafetensors(t *testing.T) {
	h := newFakeHub(t)
	opt := h.options(t)
	dir, err := Resolve(context.Background(), perceiver+"@refs/pr/1", opt)
	if err != nil {
		t.Fatal(err)
	}
	checkSnapshot(t, opt, perceiver, dir, commitPR, "config.json", "preprocessor_config.json", "model.safetensors")
	if _, err := os.Lstat(filepath.Join(dir, "pytorch_model.bin")); err == nil {
		t.Error("pytorch_model.bin fetched though model.safetensors exists")
	}
	if ref, err := os.ReadFile(filepath.Join(repoRoot(opt, perceiver), "refs", "refs", "pr", "1")); err != nil || string(ref) != commitPR {
		t.Errorf("refs/refs/pr/1 = %q, %v", ref, err)
	}
	if h.count("HEAD", "/"+perceiver+"/resolve/refs%2Fpr%2F1/config.json") != 1 {
		t.Errorf("revision not escaped as huggingface_hub does; requests: %v", h.log())
	}
	// Later files are pinned to the commit the first one reported.
	if h.count("HEAD", "/"+perceiver+"/resolve/"+commitPR+"/model.safetensors") != 1 {
		t.Errorf("weights not requested at the pinned commit; requests: %v", h.log())
	}
}

func TestCommitRevisionInCacheNeedsNoNetwork(t *testing.T) {
	h := newFakeHub(t)
	opt := h.options(t)
	if _, err := Resolve(context.Background(), perceiver, opt); err != nil {
		t.Fatal(err)
	}
	n := len(h.log())
	if _, err := Resolve(context.Background(), perceiver+"@"+commitMain, opt); err != nil {
		t.Fatal(err)
	}
	if len(h.log()) != n {
		t.Errorf("a cached commit made %d requests", len(h.log())-n)
	}
}

func TestRenamedRepoFollowsRelativeRedirect(t *testing.T) {
	h := newFakeHub(t)
	opt := h.options(t)
	dir, err := Resolve(context.Background(), "old-org/perceiver", opt)
	if err != nil {
		t.Fatal(err)
	}
	// Stored under the id the user typed, as huggingface_hub does.
	checkSnapshot(t, opt, "old-org/perceiver", dir, commitMain, "config.json", "pytorch_model.bin")
}

func TestHubErrors(t *testing.T) {
	h := newFakeHub(t)
	cases := []struct {
		model, token string
		want         error
		mention      string
	}{
		{"nobody/nothing", "", ErrRepoNotFound, "HF_TOKEN"},
		{"acme/private", "", ErrRepoNotFound, "HF_TOKEN"},
		{"acme/private", "hf_wrong", ErrRepoNotFound, "HF_TOKEN"},
		{"acme/gated", "", ErrAccessDenied, "HF_TOKEN"},
		{"acme/gated", "hf_wrong", ErrAccessDenied, "gated"},
		{perceiver + "@v9", "", ErrRevisionNotFound, "@v9"},
		{"acme/no-weights", "", ErrEntryNotFound, "pytorch_model.bin"},
	}
	for _, c := range cases {
		opt := h.options(t)
		opt.Token = c.token
		_, err := Resolve(context.Background(), c.model, opt)
		if !errors.Is(err, c.want) {
			t.Errorf("%s (token %q): err = %v, want %v", c.model, c.token, err, c.want)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, c.mention) || strings.Contains(msg, "\n") {
			t.Errorf("%s: message %q should be one line mentioning %q", c.model, msg, c.mention)
		}
	}
}

func TestTokenOpensPrivateAndGated(t *testing.T) {
	h := newFakeHub(t)
	for _, repo := range []string{"acme/private", "acme/gated"} {
		opt := h.options(t)
		opt.Token = h.token
		dir, err := Resolve(context.Background(), repo, opt)
		if err != nil {
			t.Fatalf("%s: %v", repo, err)
		}
		checkSnapshot(t, opt, repo, dir, commitMain, "config.json", "pytorch_model.bin")
	}
	for _, r := range h.log() {
		if r.method == "HEAD" && r.auth != "Bearer "+h.token {
			t.Errorf("HEAD %s without the token", r.path)
		}
	}
}

func TestResumeAfterDroppedConnection(t *testing.T) {
	h := newFakeHub(t)
	opt := h.options(t)
	sha := testFiles["pytorch_model.bin"].sha256
	const cut = 50_000
	h.cutAfter[sha] = cut
	_, err := Resolve(context.Background(), perceiver, opt)
	if err == nil || !strings.Contains(err.Error(), "run again to resume") {
		t.Fatalf("err = %v, want an interrupted download", err)
	}
	inc := filepath.Join(repoRoot(opt, perceiver), "blobs", sha+".incomplete")
	st, err := os.Stat(inc)
	if err != nil || st.Size() == 0 || st.Size() > cut {
		t.Fatalf("partial file %s: %v (size %d), want 1..%d bytes", inc, err, st.Size(), cut)
	}
	have := st.Size()

	dir, err := Resolve(context.Background(), perceiver, opt)
	if err != nil {
		t.Fatal(err)
	}
	checkSnapshot(t, opt, perceiver, dir, commitMain, "pytorch_model.bin")
	wantRange := "bytes=" + strconv.FormatInt(have, 10) + "-"
	var ranged bool
	for _, r := range h.log() {
		ranged = ranged || (strings.HasPrefix(r.path, "/cdn/") && r.rangeHdr == wantRange)
	}
	if !ranged {
		t.Errorf("no CDN request with Range %q: %v", wantRange, h.log())
	}
	total := int64(len(readTestdata(t, "pytorch_model.bin")))
	if got := h.servedBytes(sha); got != cut+total-have {
		t.Errorf("CDN sent %d bytes in all, want %d (the cut %d plus the rest %d)", got, cut+total-have, cut, total-have)
	}
}

func TestServerIgnoringRangeRestarts(t *testing.T) {
	h := newFakeHub(t)
	opt := h.options(t)
	h.noRanges = true
	sha := testFiles["pytorch_model.bin"].sha256
	blobs := filepath.Join(repoRoot(opt, perceiver), "blobs")
	os.MkdirAll(blobs, 0o755)
	// A stale partial file whose bytes are wrong: a full 200 reply must replace it.
	if err := os.WriteFile(filepath.Join(blobs, sha+".incomplete"), bytes.Repeat([]byte{7}, 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	dir, err := Resolve(context.Background(), perceiver, opt)
	if err != nil {
		t.Fatal(err)
	}
	checkSnapshot(t, opt, perceiver, dir, commitMain, "pytorch_model.bin")
}

func TestChecksumMismatchRemovesPartial(t *testing.T) {
	h := newFakeHub(t)
	opt := h.options(t)
	h.corrupt = true
	_, err := Resolve(context.Background(), perceiver, opt)
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "partial file removed") {
		t.Fatalf("err = %v, want a checksum mismatch", err)
	}
	sha := testFiles["pytorch_model.bin"].sha256
	blobs := filepath.Join(repoRoot(opt, perceiver), "blobs")
	for _, p := range []string{sha, sha + ".incomplete"} {
		if _, err := os.Stat(filepath.Join(blobs, p)); err == nil {
			t.Errorf("%s kept after a checksum mismatch", p)
		}
	}
	h.corrupt = false
	if _, err := Resolve(context.Background(), perceiver, opt); err != nil {
		t.Fatalf("retry after mismatch: %v", err)
	}
}

func TestDiskFull(t *testing.T) {
	h := newFakeHub(t)
	opt := h.options(t)
	saved := freeSpace
	t.Cleanup(func() { freeSpace = saved })
	freeSpace = func(string) (int64, bool) { return 500, true } // less than config.json's 1000 bytes
	_, err := Resolve(context.Background(), perceiver, opt)
	if !errors.Is(err, ErrDiskFull) || !strings.Contains(err.Error(), "config.json") {
		t.Fatalf("err = %v, want disk full naming config.json", err)
	}

	// A write that hits ENOSPC: /dev/full fails every write that way.
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no /dev/full on this system: %v", err)
	}
	defer full.Close()
	_, werr, rerr := copyBody(full, strings.NewReader("some bytes"), nil)
	if !errors.Is(werr, ErrDiskFull) || rerr != nil {
		t.Errorf("copyBody to /dev/full: werr %v, rerr %v; want ErrDiskFull", werr, rerr)
	}
}

func TestUnreachableFallsBackToCache(t *testing.T) {
	h := newFakeHub(t)
	opt := h.options(t)
	dir, err := Resolve(context.Background(), perceiver, opt)
	if err != nil {
		t.Fatal(err)
	}
	h.srv.Close()
	if got, err := Resolve(context.Background(), perceiver, opt); err != nil || got != dir {
		t.Errorf("with the hub down: %s, %v; want the cached %s", got, err, dir)
	}
	opt.CacheDir = t.TempDir()
	_, err = Resolve(context.Background(), perceiver, opt)
	if !errors.Is(err, ErrNotCached) || !strings.Contains(err.Error(), "cannot reach") {
		t.Errorf("hub down, empty cache: %v", err)
	}
}

// TestStalledDownloadTimesOut: a CDN that stops sending mid-file with the connection open hung
// Resolve (and `probe classify`) forever. With a read timeout the download ends naming the file,
// keeps what it received, and the next run resumes from there (issue 19 item 13).
func TestStalledDownloadTimesOut(t *testing.T) {
	h := newFakeHub(t)
	opt := h.options(t)
	opt.ReadTimeout = 300 * time.Millisecond
	sha := testFiles["pytorch_model.bin"].sha256
	const stall = 40_000
	h.stallAt[sha] = stall

	errc := make(chan error, 1)
	go func() {
		_, err := Resolve(context.Background(), perceiver, opt)
		errc <- err
	}()
	var err error
	select {
	case err = <-errc:
	case <-time.After(20 * time.Second): // far above the timeout: only a hang gets here
		t.Fatal("Resolve still waiting on a stalled download after 20 s")
	}
	if !errors.Is(err, ErrStalled) || !strings.Contains(err.Error(), "pytorch_model.bin") || !strings.Contains(err.Error(), "run again to resume") {
		t.Fatalf("err = %v, want ErrStalled naming pytorch_model.bin and saying it resumes", err)
	}
	inc := filepath.Join(repoRoot(opt, perceiver), "blobs", sha+".incomplete")
	if st, err := os.Stat(inc); err != nil || st.Size() != stall {
		t.Fatalf("partial file %s: %v, want the %d bytes received", inc, err, stall)
	}
	dir, err := Resolve(context.Background(), perceiver, opt)
	if err != nil {
		t.Fatal(err)
	}
	checkSnapshot(t, opt, perceiver, dir, commitMain, "pytorch_model.bin")
	want := "bytes=" + strconv.Itoa(stall) + "-"
	var ranged bool
	for _, r := range h.log() {
		ranged = ranged || (strings.HasPrefix(r.path, "/cdn/") && r.rangeHdr == want)
	}
	if !ranged {
		t.Errorf("the second run did not resume with Range %q", want)
	}
}

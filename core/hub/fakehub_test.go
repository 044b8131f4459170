package hub

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Reference digests of the files in testdata/hub (copies of the tiny fixture),
// computed outside Go with `git hash-object <file>` (git's blob sha1, the
// hub's ETag of files stored in git) and `sha256sum <file>` (the hub's
// X-Linked-Etag of LFS files).
var testFiles = map[string]struct{ gitSHA1, sha256 string }{
	"config.json":              {"cd920546fc643909f26f6db631407828b2e28795", "010df371372680c2843bbaedb2c24fc8e5b0e57338788f2400cc45cba093ca60"},
	"preprocessor_config.json": {"b31f31b2e95a91e1195154d4ae6a535d59f6fc70", "60b5a2211aca734f624b0e80589bfed9ca3c5ffec32585200c637e98413c2600"},
	"pytorch_model.bin":        {"8471df1078c9115363f8ff84796a1cabffa70498", "0bd59d77ce0fd9a2c21129554d7f8e87bc9968714e32bc0e1972e7a0127a977d"},
	"model.safetensors":        {"5982a7af13eab1228dc19a959facee206cd9385a", "987adceb8e873806142bb3ceec2226ed3763070d4abbc286ae3c3e9e053a846c"},
}

// lfsFiles are served as the hub serves LFS files: a 302 to a CDN.
var lfsFiles = map[string]bool{"pytorch_model.bin": true, "model.safetensors": true}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "hub", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// etagOf is the blob name the hub would give name.
func etagOf(name string) string {
	if lfsFiles[name] {
		return testFiles[name].sha256
	}
	return testFiles[name].gitSHA1
}

type fakeRepo struct {
	refs    map[string]string            // branch or ref → commit
	files   map[string]map[string][]byte // commit → file → content
	private bool                         // needs the token; unknown otherwise
	gated   bool                         // needs the token; gated otherwise
}

type request struct {
	method, path, rangeHdr, acceptEncoding, auth string
}

// fakeHub emulates the hub's resolve endpoint and an LFS CDN, after the
// behaviour huggingface_hub's file_download.py and _http.py rely on.
type fakeHub struct {
	t       testing.TB
	srv     *httptest.Server
	token   string
	repos   map[string]*fakeRepo
	renamed map[string]string // old id → new id, answered with a relative 307

	mu       sync.Mutex
	requests []request
	corrupt  bool             // CDN flips a byte
	cutAfter map[string]int64 // sha256 → bytes sent before dropping the connection, once
	served   map[string]int64 // sha256 → body bytes sent by the CDN
	noRanges bool             // CDN ignores Range, as some proxies do
	stallAt  map[string]int64 // sha256 → bytes sent before the CDN stops sending (connection open), once
	release  chan struct{}    // closed at cleanup: ends stalled handlers
}

const (
	commitMain = "1111111111111111111111111111111111111111"
	commitPR   = "2222222222222222222222222222222222222222"
)

func newFakeHub(t testing.TB) *fakeHub {
	files := map[string][]byte{}
	for name := range testFiles {
		files[name] = readTestdata(t, name)
	}
	main := map[string][]byte{"config.json": files["config.json"], "preprocessor_config.json": files["preprocessor_config.json"], "pytorch_model.bin": files["pytorch_model.bin"]}
	pr := map[string][]byte{"model.safetensors": files["model.safetensors"]}
	for k, v := range main {
		pr[k] = v
	}
	full := func() *fakeRepo {
		return &fakeRepo{
			refs:  map[string]string{"main": commitMain, "refs/pr/1": commitPR},
			files: map[string]map[string][]byte{commitMain: main, commitPR: pr},
		}
	}
	h := &fakeHub{
		t:     t,
		token: "hf_secret",
		repos: map[string]*fakeRepo{
			"deepmind/vision-perceiver-fourier": full(),
			"acme/private":                      full(),
			"acme/gated":                        full(),
			"acme/no-weights": {
				refs:  map[string]string{"main": commitMain},
				files: map[string]map[string][]byte{commitMain: {"config.json": files["config.json"], "preprocessor_config.json": files["preprocessor_config.json"]}},
			},
		},
		renamed:  map[string]string{"old-org/perceiver": "deepmind/vision-perceiver-fourier"},
		cutAfter: map[string]int64{},
		served:   map[string]int64{},
		stallAt:  map[string]int64{},
		release:  make(chan struct{}),
	}
	h.repos["acme/private"].private = true
	h.repos["acme/gated"].gated = true
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.srv.Close)
	t.Cleanup(func() { close(h.release) }) // runs first: no handler outlives the test
	return h
}

func (h *fakeHub) log() []request {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]request(nil), h.requests...)
}

func (h *fakeHub) count(method, pathPrefix string) int {
	n := 0
	for _, r := range h.log() {
		if r.method == method && strings.HasPrefix(r.path, pathPrefix) {
			n++
		}
	}
	return n
}

func (h *fakeHub) serve(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.requests = append(h.requests, request{r.Method, r.URL.EscapedPath(), r.Header.Get("Range"), r.Header.Get("Accept-Encoding"), r.Header.Get("Authorization")})
	h.mu.Unlock()

	parts := strings.SplitN(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/", 5)
	if len(parts) == 2 && parts[0] == "cdn" {
		h.serveCDN(w, r, parts[1])
		return
	}
	if len(parts) != 5 || parts[2] != "resolve" {
		http.NotFound(w, r)
		return
	}
	id := parts[0] + "/" + parts[1]
	if to, ok := h.renamed[id]; ok {
		w.Header().Set("Location", "/"+to+"/resolve/"+parts[3]+"/"+parts[4])
		w.WriteHeader(http.StatusTemporaryRedirect)
		return
	}
	rev, _ := url.PathUnescape(parts[3])
	file, _ := url.PathUnescape(parts[4])
	authed := r.Header.Get("Authorization") == "Bearer "+h.token
	repo := h.repos[id]
	switch {
	case repo == nil || (repo.private && !authed):
		w.Header().Set("X-Error-Code", "RepoNotFound")
		w.Header().Set("X-Error-Message", "Repository not found")
		w.WriteHeader(http.StatusUnauthorized)
		return
	case repo.gated && !authed:
		w.Header().Set("X-Error-Code", "GatedRepo")
		status := http.StatusUnauthorized
		if r.Header.Get("Authorization") != "" {
			status = http.StatusForbidden
		}
		w.WriteHeader(status)
		return
	}
	commit, ok := repo.refs[rev]
	if !ok {
		commit = rev
	}
	files, ok := repo.files[commit]
	if !ok {
		w.Header().Set("X-Error-Code", "RevisionNotFound")
		w.WriteHeader(http.StatusNotFound)
		return
	}
	w.Header().Set("X-Repo-Commit", commit)
	content, ok := files[file]
	if !ok {
		w.Header().Set("X-Error-Code", "EntryNotFound")
		w.WriteHeader(http.StatusNotFound)
		return
	}
	if lfsFiles[file] {
		sha := testFiles[file].sha256
		w.Header().Set("X-Linked-Etag", `"`+sha+`"`)
		w.Header().Set("X-Linked-Size", fmt.Sprint(len(content)))
		w.Header().Set("ETag", `"`+strings.Repeat("9", 40)+`"`) // the LFS pointer's own etag
		w.Header().Set("Location", h.srv.URL+"/cdn/"+sha+"?X-Amz-Signature=abc")
		w.WriteHeader(http.StatusFound)
		return
	}
	etag := `"` + testFiles[file].gitSHA1 + `"`
	if file == "preprocessor_config.json" {
		etag = "W/" + etag // the hub may send weak etags
	}
	w.Header().Set("ETag", etag)
	http.ServeContent(w, r, file, time.Time{}, bytes.NewReader(content))
}

func (h *fakeHub) serveCDN(w http.ResponseWriter, r *http.Request, sha string) {
	var content []byte
	for name, d := range testFiles {
		if d.sha256 == sha {
			content = readTestdata(h.t, name)
		}
	}
	if content == nil {
		http.NotFound(w, r)
		return
	}
	h.mu.Lock()
	corrupt, noRanges := h.corrupt, h.noRanges
	cut, cutting := h.cutAfter[sha]
	delete(h.cutAfter, sha)
	stall, stalling := h.stallAt[sha]
	delete(h.stallAt, sha)
	h.mu.Unlock()
	if corrupt {
		content = append([]byte(nil), content...)
		content[len(content)/2] ^= 0xff
	}
	// Bytes are counted before they are sent, under the lock, so that a test reading the count
	// after its download finished sees all of them (a deferred update could still be pending).
	cw := &countingWriter{ResponseWriter: w, count: func(n int64) {
		h.mu.Lock()
		h.served[sha] += n
		h.mu.Unlock()
	}}
	if cutting && r.Header.Get("Range") == "" {
		w.Header().Set("Content-Length", fmt.Sprint(len(content)))
		w.WriteHeader(http.StatusOK)
		cw.Write(content[:cut])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // drops the connection mid-body
	}
	if stalling && r.Header.Get("Range") == "" {
		w.Header().Set("Content-Length", fmt.Sprint(len(content)))
		w.WriteHeader(http.StatusOK)
		cw.Write(content[:stall])
		w.(http.Flusher).Flush()
		select { // keeps the connection open, sending nothing
		case <-r.Context().Done():
		case <-h.release:
		}
		return
	}
	if noRanges {
		r.Header.Del("Range")
	}
	http.ServeContent(cw, r, "blob", time.Time{}, bytes.NewReader(content))
}

type countingWriter struct {
	http.ResponseWriter
	count func(n int64)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.count(int64(len(p)))
	return c.ResponseWriter.Write(p)
}

// servedBytes is how many body bytes the CDN has sent of the blob sha.
func (h *fakeHub) servedBytes(sha string) int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.served[sha]
}

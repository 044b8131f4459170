package hub

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// oddHub serves the main-branch files of the fake repository through handler-specific replies,
// on a loopback httptest server.
func oddHub(t *testing.T, head func(w http.ResponseWriter, name string), get func(w http.ResponseWriter, r *http.Request, body []byte, release <-chan struct{})) *httptest.Server {
	t.Helper()
	files := map[string][]byte{}
	for _, name := range []string{"config.json", "preprocessor_config.json", "pytorch_model.bin"} {
		files[name] = readTestdata(t, name)
	}
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := filepath.Base(r.URL.Path)
		body, ok := files[name]
		if !ok {
			w.Header().Set("X-Error-Code", "EntryNotFound")
			w.Header().Set("X-Repo-Commit", commitMain)
			w.WriteHeader(http.StatusNotFound)
			return
		}
		if r.Method == http.MethodHead {
			w.Header().Set("X-Repo-Commit", commitMain)
			head(w, name)
			return
		}
		select {
		case <-release:
		default:
			get(w, r, body, release)
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	return srv
}

// Issue 23 item 12: a server that trickles one byte at a time, each within the idle timeout, is
// stopped by the minimum rate, naming the file.
func TestTricklingServerStopped(t *testing.T) {
	srv := oddHub(t, func(w http.ResponseWriter, name string) {
		w.Header().Set("ETag", `"`+testFiles[name].gitSHA1+`"`)
		w.Header().Set("Content-Length", "1000000")
	}, func(w http.ResponseWriter, r *http.Request, body []byte, release <-chan struct{}) {
		w.Header().Set("Content-Length", "1000000")
		w.WriteHeader(http.StatusOK)
		for i := 0; i < 1000000; i++ {
			if _, err := w.Write([]byte{'x'}); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-release: // the test ended
				return
			case <-time.After(50 * time.Millisecond): // 20 bytes/s, each byte well within the idle timeout
			}
		}
	})
	opt := Options{Endpoint: srv.URL, CacheDir: t.TempDir(), Client: srv.Client(), ReadTimeout: 300 * time.Millisecond, MinRate: 1000}
	errc := make(chan error, 1)
	go func() {
		_, err := Resolve(context.Background(), perceiver, opt)
		errc <- err
	}()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrStalled) || !strings.Contains(err.Error(), "config.json") {
			t.Errorf("err = %v, want ErrStalled naming config.json", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a trickling download still running after 20 s")
	}
}

// Issue 23 item 20: a HEAD answered with 302, Content-Length 0 (the redirect's own body) and an
// ETag that is not a hash must not cache an empty file: the size is the file's, from the download.
func TestRedirectContentLengthNotTheFileSize(t *testing.T) {
	var srvURL string
	srv := oddHub(t, func(w http.ResponseWriter, name string) {
		w.Header().Set("ETag", `"opaque-`+strings.ReplaceAll(name, ".", "-")+`"`)
		w.Header().Set("Location", srvURL+"/cdn/"+name)
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusFound)
	}, func(w http.ResponseWriter, r *http.Request, body []byte, _ <-chan struct{}) {
		w.Write(body)
	})
	srvURL = srv.URL
	opt := Options{Endpoint: srv.URL, CacheDir: t.TempDir(), Client: srv.Client()}
	dir, err := Resolve(context.Background(), perceiver, opt)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"config.json", "preprocessor_config.json"} {
		got, _ := os.ReadFile(filepath.Join(dir, name))
		if want := readTestdata(t, name); string(got) != string(want) {
			t.Errorf("%s: cached %d bytes, want the %d served", name, len(got), len(want))
		}
	}
}

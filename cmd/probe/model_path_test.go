package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// TestModelPathNotHub checks issue 29's rule for --model: a value that looks like a local path
// and does not exist is a local error naming it, and the hub (a fake endpoint that fails the test
// when contacted) is never asked.
func TestModelPathNotHub(t *testing.T) {
	hub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("hub contacted: %s %s", r.Method, r.URL)
		http.NotFound(w, r)
	}))
	defer hub.Close()
	t.Setenv("HF_ENDPOINT", hub.URL)
	t.Setenv("HF_HUB_CACHE", t.TempDir())
	t.Setenv("HF_HUB_OFFLINE", "")
	img, err := filepath.Abs(filepath.Join(tinyDir, "chelsea.png"))
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	if err := os.Mkdir(filepath.Join(work, "models"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(work)
	for _, model := range []string{
		"./nosuch",                    // starts with .
		"../testdata/nosuch",          // starts with .
		filepath.Join(work, "nosuch"), // absolute
		"testdata/tiny/nosuch",        // a / but not org/name
		"models/nosuch",               // org/name in form, but its parent folder exists here
		"models/nosuch@main",          // the same with a revision
	} {
		_, errOut, code := run(t, "classify", "--model", model, img)
		if code != 1 || !strings.Contains(errOut, "--model "+model+": no such folder") {
			t.Errorf("--model %s: exit %d, stderr %q; want a local error naming it", model, code, errOut)
		}
	}
}

// TestModelHubIDFailsBothReadings checks that a hub id that fails on the hub says that it is not
// a local folder either, so a user who meant a folder sees why it was not found.
func TestModelHubIDFailsBothReadings(t *testing.T) {
	var asked atomic.Int32
	hub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		http.NotFound(w, r)
	}))
	defer hub.Close()
	t.Setenv("HF_ENDPOINT", hub.URL)
	t.Setenv("HF_HUB_CACHE", t.TempDir())
	t.Setenv("HF_HUB_OFFLINE", "")
	_, errOut, code := run(t, "classify", "--model", "nosuchorg/nosuchmodel", filepath.Join(tinyDir, "chelsea.png"))
	if code != 1 || !strings.Contains(errOut, "not a local folder") || !strings.Contains(errOut, "as a hub id") {
		t.Errorf("exit %d, stderr %q; want both readings named", code, errOut)
	}
	if asked.Load() == 0 {
		t.Error("the hub was never asked for a valid hub id")
	}
}

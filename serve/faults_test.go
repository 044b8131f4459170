package serve

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/core/weights"
	"github.com/perceiverkit/perceiver/explain"
)

// Issue 23 item 6: a model whose outputs overflow (finite weights of 3e38) gets 500 with a message
// naming what is not finite, never 200 with an empty body.
func TestNonFiniteAnswers500(t *testing.T) {
	model := t.TempDir()
	for _, name := range []string{"config.json", "preprocessor_config.json"} {
		b, err := os.ReadFile(filepath.Join(tinyDir, name))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(model, name), b, 0o644)
	}
	f, err := weights.OpenSafetensors(filepath.Join(tinyDir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	var ts []*weights.Tensor
	for _, name := range f.Names() {
		tt := *f.Tensors[name]
		tt.Data = append([]float32(nil), tt.Data...)
		if name == "perceiver.decoder.decoder.final_layer.weight" {
			for i := range tt.Data {
				tt.Data[i] = 3e38
			}
		}
		ts = append(ts, &tt)
	}
	f.Close()
	if err := weights.WriteSafetensors(filepath.Join(model, "model.safetensors"), ts, nil); err != nil {
		t.Fatal(err)
	}
	m, err := core.Load(model)
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := imageDir(t)
	s, err := New(m, Options{Images: dir})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer func() { srv.Close(); s.Close() }()
	for _, path := range []string{"/api/analysis?image=cat.png", "/api/map.png?image=cat.png&kind=mean"} {
		resp, body := get(t, srv.URL+path)
		if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(body), "non-finite") {
			t.Errorf("%s: %d %q, want 500 naming the non-finite output", path, resp.StatusCode, body)
		}
	}
}

// Issue 23 item 21: an upload body that trickles in is cut off after BodyTimeout (408), instead of
// holding a connection and a handler for as long as the client likes.
func TestTricklingUploadTimesOut(t *testing.T) {
	s, ts := newTestServer(t, Options{BodyTimeout: 300 * time.Millisecond})
	_ = s
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /api/upload HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=B\r\nContent-Length: 100000\r\n\r\n")
	fmt.Fprintf(conn, "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\n")
	done := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(conn)
		done <- string(b)
	}()
	start := time.Now()
	for {
		select {
		case reply := <-done:
			if time.Since(start) > 5*time.Second || (reply != "" && !strings.Contains(reply, " 408 ")) {
				t.Errorf("after %s: %.200q, want 408 soon after 300 ms", time.Since(start), reply)
			}
			return
		case <-time.After(50 * time.Millisecond):
			conn.Write([]byte{'x'}) // a byte every 50 ms
			if time.Since(start) > 15*time.Second {
				t.Fatal("the server still reads a trickling upload after 15 s")
			}
		}
	}
}

// Issue 23 item 9: a costly map (smoothgrad at many samples) neither holds up another
// user's new image (analyses do not queue behind costly maps) nor keeps running once every client
// that asked for it is gone.
func TestCostlyMapCancelledAndOffTheAnalysisQueue(t *testing.T) {
	ig, err := ExplainKind("smoothgrad", explain.Options{Steps: 1, Baseline: "zero", Samples: 30000, Noise: 0.1, Window: 4, Stride: 4})
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := imageDir(t)
	kinds := Kinds()
	for i := range kinds {
		if kinds[i].Name == ig.Name {
			kinds[i] = ig
		}
	}
	s, ts := newTestServer(t, Options{Images: dir, Kinds: kinds})
	// The first image's analysis, then its costly map, which the client abandons after 300 ms.
	get(t, ts.URL+"/api/analysis?image=cat.png")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/api/map.png?image=cat.png&kind=smoothgrad", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the costly map finished in 300 ms (%s): make it costlier", resp.Status)
	}
	// Another user's new image is analysed at once, not after the costly map.
	start := time.Now()
	resp, body := get(t, ts.URL+"/api/analysis?image=stripes.png")
	if resp.StatusCode != http.StatusOK || time.Since(start) > 5*time.Second {
		t.Errorf("a new image waited %s behind a costly map (%d %.100s)", time.Since(start), resp.StatusCode, body)
	}
	// The abandoned map stops (uncancelled, its 30,000 backward passes take about 11 s at a load of 24 here; cancelled, one batch).
	// Under the race detector (-short in CI) drawing the noisy copies before the first batch alone
	// takes seconds, and the uncancelled map several times its 11 s: a wider bound still tells the
	// two apart.
	wait := 3 * time.Second
	if testing.Short() {
		wait = 30 * time.Second
	}
	deadline := time.Now().Add(wait)
	for s.costly.pending() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the abandoned costly map still runs %s after its only client left", wait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

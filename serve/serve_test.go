package serve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/core/preprocess"
	"github.com/perceiverkit/perceiver/viz"
)

// The tiny fixture: 12×16 input, 8 latents, 4 self-attention applications of 4 heads, 5 labels.
const tinyDir = "../testdata/tiny"

var (
	tinyOnce  sync.Once
	tinyModel *core.Model
	tinyErr   error
)

func loadTiny(t testing.TB) *core.Model {
	t.Helper()
	tinyOnce.Do(func() { tinyModel, tinyErr = core.Load(tinyDir) })
	if tinyErr != nil {
		t.Fatal(tinyErr)
	}
	return tinyModel
}

// imageDir builds an --images folder with the cases the server must handle:
//
//	cat.png, dog.jpg-as-png (sub/cat.png), inside.png → cat.png (symlink inside: allowed),
//	out.png → a PNG outside the folder, outdir → a folder outside, .hidden.png, notes.txt,
//	broken.png (not an image), and a sibling "secret" folder next to it.
func imageDir(t *testing.T) (dir, outside string) {
	t.Helper()
	base := t.TempDir()
	dir = filepath.Join(base, "images")
	outside = filepath.Join(base, "secret")
	for _, d := range []string{dir, filepath.Join(dir, "sub"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cat, err := os.ReadFile(filepath.Join(tinyDir, "chelsea.png"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(p string, data []byte) {
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "cat.png"), cat)
	write(filepath.Join(dir, "sub", "cat.png"), cat)
	write(filepath.Join(dir, "stripes.png"), stripesPNG(t))
	write(filepath.Join(dir, ".hidden.png"), cat)
	write(filepath.Join(dir, "notes.txt"), []byte("not an image"))
	write(filepath.Join(dir, "broken.png"), []byte("\x89PNG\r\n\x1a\nnot really"))
	write(filepath.Join(outside, "secret.png"), cat)
	for link, target := range map[string]string{
		"inside.png": "cat.png",
		"out.png":    filepath.Join(outside, "secret.png"),
		"up.png":     "../secret/secret.png",
		"outdir":     outside,
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	return dir, outside
}

// stripesPNG is a second, different image.
func stripesPNG(t *testing.T) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 40, 30))
	for i := range img.Pix {
		if (i/4)%40/5%2 == 0 {
			img.Pix[i] = 230
		} else {
			img.Pix[i] = byte(20 + i%3*40)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func newTestServer(t *testing.T, opt Options) (*Server, *httptest.Server) {
	t.Helper()
	s, err := New(loadTiny(t), opt)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() { ts.Close(); s.Close() })
	return s, ts
}

func get(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, body := get(t, url)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

func decodePNG(t *testing.T, data []byte) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("not a PNG: %v (%q)", err, data[:min(len(data), 80)])
	}
	return img
}

func TestRoutes(t *testing.T) {
	dir, _ := imageDir(t)
	_, ts := newTestServer(t, Options{Images: dir, ModelName: "tiny"})

	var info infoJSON
	getJSON(t, ts.URL+"/api/info", &info)
	if info.Latents != 8 || info.Applications != 4 || info.Labels != 5 || info.Input != [2]int{12, 16} {
		t.Errorf("info = %+v", info)
	}
	var kinds []string
	for _, k := range info.Kinds {
		kinds = append(kinds, k.Name)
	}
	if strings.Join(kinds, ",") != "mean,decoder,rollout,chefer,grad-rollout,saliency,input-x-gradient,integrated-gradients,smoothgrad,attnlrp,cp-lrp" {
		t.Errorf("kinds = %v", kinds)
	}

	var list struct {
		Images    []imageEntry
		Truncated bool
	}
	getJSON(t, ts.URL+"/api/images", &list)
	var names []string
	for _, im := range list.Images {
		names = append(names, im.Name)
	}
	// Symlinks out, hidden files, non-images and folders outside are not listed.
	if got, want := strings.Join(names, ","), "broken.png,cat.png,inside.png,stripes.png,sub/cat.png"; got != want {
		t.Errorf("listed %s, want %s", got, want)
	}

	var a analysisJSON
	getJSON(t, ts.URL+"/api/analysis?image=sub/cat.png", &a)
	if a.Height != 12 || a.Width != 16 || a.Latents != 8 || a.Applications != 4 || len(a.Top) != 5 || len(a.Decoder) != 8 || len(a.Rollout) != 8 {
		t.Fatalf("analysis shape: %+v", a)
	}
	// Top-5 against the logits of a direct forward pass (the fixture's top label is class_1).
	if a.Top[0].Label != "class_1" || a.Top[0].Index != 1 {
		t.Errorf("top-1 = %+v, want class_1", a.Top[0])
	}
	var sum float64
	for i, p := range a.Top {
		sum += float64(p.Prob)
		if i > 0 && p.Prob > a.Top[i-1].Prob {
			t.Errorf("top-5 not sorted: %+v", a.Top)
		}
	}
	if math.Abs(sum-1) > 1e-6 { // 5 labels: the top-5 is every class
		t.Errorf("probabilities sum to %v", sum)
	}

	for _, u := range []string{
		"/api/map.png?image=cat.png&kind=mean",
		"/api/map.png?image=cat.png&kind=decoder&cmap=gray",
		"/api/map.png?image=cat.png&kind=rollout&step=0",
		"/api/map.png?image=cat.png&kind=rollout&step=4&cmap=hot",
		"/api/latent.png?image=cat.png&latent=7",
		"/api/input.png?image=cat.png",
	} {
		resp, body := get(t, ts.URL+u)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/png" {
			t.Fatalf("GET %s: %d %s", u, resp.StatusCode, body)
		}
		if b := decodePNG(t, body).Bounds(); b.Dx() != 16 || b.Dy() != 12 {
			t.Errorf("GET %s: %v, want 16×12", u, b)
		}
		if strings.Contains(u, "map") || strings.Contains(u, "latent") {
			lo, err1 := strconv.ParseFloat(resp.Header.Get("X-Map-Min"), 64)
			hi, err2 := strconv.ParseFloat(resp.Header.Get("X-Map-Max"), 64)
			if err1 != nil || err2 != nil || !(lo >= 0 && hi > lo && hi <= 1) {
				t.Errorf("GET %s: range %q..%q", u, resp.Header.Get("X-Map-Min"), resp.Header.Get("X-Map-Max"))
			}
		}
	}
	// The map's smallest and largest cells take the colour map's first and last of the 256
	// levels viz samples (at the levels' centres, t = (i+0.5)/256).
	for name, cm := range map[string]func(float64) color.RGBA{"viridis": viz.Viridis, "hot": hot, "gray": viz.Gray} {
		_, body := get(t, ts.URL+"/api/map.png?image=cat.png&kind=decoder&cmap="+name)
		img := decodePNG(t, body)
		seen := map[color.RGBA]bool{}
		for y := range 12 {
			for x := range 16 {
				r, g, b, a := img.At(x, y).RGBA()
				seen[color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), uint8(a >> 8)}] = true
			}
		}
		if lo, hi := cm(0.5/256), cm(255.5/256); !seen[lo] || !seen[hi] {
			t.Errorf("%s: the map lacks the bottom colour %v or the top one %v", name, lo, hi)
		}
	}
	resp, body := get(t, ts.URL+"/api/thumb?image=stripes.png")
	if resp.StatusCode != 200 || decodePNG(t, body).Bounds().Dx() != 40 { // never scaled up
		t.Errorf("thumb: %d", resp.StatusCode)
	}
	resp, body = get(t, ts.URL+"/api/thumb?image=cat.png")
	if b := decodePNG(t, body).Bounds(); resp.StatusCode != 200 || max(b.Dx(), b.Dy()) != thumbSide {
		t.Errorf("thumb of the cat: %d %v", resp.StatusCode, b)
	}
	resp, body = get(t, ts.URL+"/api/colorbar.png?cmap=viridis")
	if resp.StatusCode != 200 || decodePNG(t, body).Bounds().Dx() != 256 {
		t.Errorf("colorbar: %d", resp.StatusCode)
	}
	for _, u := range []string{"/", "/?image=cat.png", "/?image=sub/cat.png", "/static/app.js", "/static/style.css"} {
		if resp, body := get(t, ts.URL+u); resp.StatusCode != 200 || len(body) == 0 {
			t.Errorf("GET %s: %d", u, resp.StatusCode)
		}
	}
}

// TestBadRequests: each answer is a 4xx with a JSON error, and the server keeps serving.
func TestBadRequests(t *testing.T) {
	dir, _ := imageDir(t)
	panicky := Kind{Name: "panics", Map: func([]float32, *Analysis, Query) error { panic("boom") }}
	_, ts := newTestServer(t, Options{Images: dir, Kinds: append(Kinds(), panicky)})
	cases := []struct {
		url    string
		status int
	}{
		{"/api/analysis", 400},
		{"/api/map.png?image=cat.png", 400},
		{"/api/map.png?image=cat.png&kind=nope", 400},
		{"/api/map.png?image=cat.png&kind=rollout&step=5", 400},
		{"/api/map.png?image=cat.png&kind=rollout&step=-1", 400},
		{"/api/map.png?image=cat.png&kind=mean&class=5", 400},
		{"/api/map.png?image=cat.png&kind=mean&cmap=jet", 400},
		{"/api/latent.png?image=cat.png&latent=8", 400},
		{"/api/latent.png?image=cat.png", 400},
		{"/api/colorbar.png?cmap=nope", 400},
		{"/api/analysis?image=broken.png", 415},
		{"/api/thumb?image=broken.png", 415},
		{"/api/analysis?upload=0123456789abcdef01234567", 404},
		{"/api/analysis?upload=../../etc", 404},
		{"/api/features", 404},
		{"/api/map.png?image=cat.png&kind=panics", 500},
	}
	for _, c := range cases {
		resp, body := get(t, ts.URL+c.url)
		var e struct{ Error string }
		if resp.StatusCode != c.status || json.Unmarshal(body, &e) != nil || e.Error == "" {
			t.Errorf("GET %s: %d %s, want %d with a JSON error", c.url, resp.StatusCode, body, c.status)
		}
	}
	resp, err := http.Post(ts.URL+"/api/analysis?image=cat.png", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /api/analysis: %d, want 405", resp.StatusCode)
	}
	if resp, _ := get(t, ts.URL+"/api/analysis?image=cat.png"); resp.StatusCode != 200 {
		t.Errorf("after the bad requests: %d", resp.StatusCode)
	}
}

// TestNamesStayInsideImages tries every way out of --images we know of; each must be a 404 that
// reveals nothing, on every route that takes a name and on the deep link.
func TestNamesStayInsideImages(t *testing.T) {
	dir, outside := imageDir(t)
	_, ts := newTestServer(t, Options{Images: dir})
	abs, _ := filepath.Abs(filepath.Join(dir, "cat.png"))
	names := []string{
		"../secret/secret.png",
		"sub/../../secret/secret.png",
		"sub/../cat.png", // stays inside, but is not a clean name
		"./cat.png",
		"/cat.png",
		abs,
		filepath.Join(outside, "secret.png"),
		"out.png",           // symlink to a file outside
		"up.png",            // relative symlink climbing out
		"outdir/secret.png", // symlinked folder outside
		".hidden.png",       // hidden
		"notes.txt",         // not an image
		"sub",               // a folder
		"",                  // nothing
		"..\\secret\\secret.png",
		"cat.png\x00.png",
		"C:/Windows/win.ini",
		"nonexistent.png",
	}
	routes := []string{"/api/analysis?image=", "/api/thumb?image=", "/api/input.png?image=", "/api/map.png?kind=mean&image=", "/?image="}
	for _, n := range names {
		for _, r := range routes {
			resp, body := get(t, ts.URL+r+urlQueryEscape(n))
			want := 404
			if n == "" && r != "/?image=" {
				want = 400
			}
			if resp.StatusCode != want || bytes.Contains(body, []byte("IHDR")) {
				t.Errorf("%s%q: %d, want %d", r, n, resp.StatusCode, want)
			}
		}
	}
	// Encoded dots and slashes in the raw query and the path: decoded once by the server, and
	// then refused like the plain forms; double encoding names a file that does not exist.
	raw := []string{
		"/api/analysis?image=%2e%2e/secret/secret.png",
		"/api/analysis?image=%2E%2E%2Fsecret%2Fsecret.png",
		"/api/analysis?image=%252e%252e%252fsecret%252fsecret.png",
		"/api/analysis?image=..%5csecret%5csecret.png",
		"/api/thumb?image=%2fetc%2fpasswd",
		"/?image=%2e%2e%2fsecret%2fsecret.png",
	}
	for _, u := range raw {
		if resp, _ := get(t, ts.URL+u); resp.StatusCode != 404 {
			t.Errorf("%s: %d, want 404", u, resp.StatusCode)
		}
	}
	// Paths outside the routes: no file system behind them, no directory listing.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, p := range []string{"/static/", "/static/../go.mod", "/static/%2e%2e/go.mod", "/static/..%2fgo.mod", "/static/index.html", "/images/", "/api/", "/secret/secret.png", "/cat.png"} {
		req, _ := http.NewRequest("GET", ts.URL+"/", nil)
		req.URL.Opaque = p // sent as written, not cleaned by the client
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 || bytes.Contains(body, []byte("module ")) || bytes.Contains(body, []byte("<a href")) {
			t.Errorf("GET %s: %d %q", p, resp.StatusCode, body[:min(len(body), 100)])
		}
	}
	// A symlink inside the folder that stays inside is followed.
	if resp, _ := get(t, ts.URL+"/api/analysis?image=inside.png"); resp.StatusCode != 200 {
		t.Errorf("inside.png: %d, want 200", resp.StatusCode)
	}
}

func urlQueryEscape(s string) string {
	return strings.NewReplacer("%", "%25", "&", "%26", "+", "%2B", "#", "%23", " ", "%20", "\x00", "%00", "\\", "%5C").Replace(s)
}

// upload posts data as the multipart field "file" (or another field name).
func postUpload(t *testing.T, url, field string, data []byte) (*http.Response, []byte) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	w, err := mw.CreateFormFile(field, "../../evil/name.png")
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	mw.Close()
	resp, err := http.Post(url+"/api/upload", mw.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, out
}

func pngDecode(data []byte) (image.Image, error) { return png.Decode(bytes.NewReader(data)) }

func TestUpload(t *testing.T) {
	dir, _ := imageDir(t)
	_, ts := newTestServer(t, Options{Images: dir})
	cat, _ := os.ReadFile(filepath.Join(tinyDir, "chelsea.png"))

	resp, body := postUpload(t, ts.URL, "file", cat)
	if resp.StatusCode != 200 {
		t.Fatalf("upload: %d %s", resp.StatusCode, body)
	}
	var a analysisJSON
	if err := json.Unmarshal(body, &a); err != nil || !validUploadID(a.Upload) || a.Image != "" || len(a.Top) != 5 {
		t.Fatalf("upload answer: %s", body)
	}
	if a.Name != "name.png" {
		t.Errorf("upload name %q, want the sanitised base name name.png", a.Name)
	}
	// The upload equals the same file in the folder.
	var f analysisJSON
	getJSON(t, ts.URL+"/api/analysis?image=cat.png", &f)
	if fmt.Sprint(f.Top) != fmt.Sprint(a.Top) {
		t.Errorf("upload top-5 %v, folder %v", a.Top, f.Top)
	}
	for _, u := range []string{"/api/analysis?upload=" + a.Upload, "/api/map.png?kind=rollout&upload=" + a.Upload, "/api/thumb?upload=" + a.Upload, "/?upload=" + a.Upload} {
		if resp, body := get(t, ts.URL+u); resp.StatusCode != 200 {
			t.Errorf("GET %s: %d %s", u, resp.StatusCode, body)
		}
	}

	bomb := bombPNG(t, 9500) // 90.25 M pixels: over preprocess.DefaultMaxPixels
	if len(bomb) > 1<<20 {
		t.Fatalf("bomb is %d bytes; it should be small", len(bomb))
	}
	cases := []struct {
		name   string
		field  string
		data   []byte
		status int
	}{
		{"junk", "file", bytes.Repeat([]byte("junk\x00\xff"), 1000), 415},
		{"gif header, no image", "file", []byte("GIF89a\x10\x00\x10\x00\x00\x00\x00;"), 415},
		{"text", "file", []byte("hello"), 415},
		{"truncated png", "file", cat[:len(cat)/2], 415},
		{"empty", "file", nil, 400},
		{"wrong field", "image", cat, 400},
		{"decompression bomb", "file", bomb, 413},
	}
	// The 20 MB bodies take seconds under the race detector (CI's -short run); the full run has them.
	if !testing.Short() {
		cases = append(cases, struct {
			name   string
			field  string
			data   []byte
			status int
		}{"oversize", "file", bytes.Repeat([]byte{0}, DefaultMaxUpload+1), 413})
	}
	for _, c := range cases {
		resp, body := postUpload(t, ts.URL, c.field, c.data)
		var e struct{ Error string }
		if resp.StatusCode != c.status || json.Unmarshal(body, &e) != nil || e.Error == "" {
			t.Errorf("%s: %d %s, want %d with a JSON error", c.name, resp.StatusCode, body, c.status)
		}
	}
	// Exactly the cap is accepted as far as size goes (then refused as junk).
	if !testing.Short() {
		if resp, body := postUpload(t, ts.URL, "file", bytes.Repeat([]byte{0}, DefaultMaxUpload)); resp.StatusCode != 415 {
			t.Errorf("upload of exactly the cap: %d %s, want 415", resp.StatusCode, body)
		}
	}
	resp, err := http.Post(ts.URL+"/api/upload", "image/png", bytes.NewReader(cat))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("non-multipart upload: %d, want 400", resp.StatusCode)
	}
	// A bomb in the folder is refused the same way.
	if err := os.WriteFile(filepath.Join(dir, "bomb.png"), bomb, 0o644); err != nil {
		t.Fatal(err)
	}
	// So is a file too large to read (sparse: it takes no disk).
	big, err := os.Create(filepath.Join(dir, "big.png"))
	if err != nil {
		t.Fatal(err)
	}
	if err := big.Truncate(maxFileBytes + 1); err != nil {
		t.Fatal(err)
	}
	big.Close()
	for _, u := range []string{"/api/analysis?image=bomb.png", "/api/thumb?image=bomb.png", "/api/analysis?image=big.png", "/api/thumb?image=big.png"} {
		if resp, body := get(t, ts.URL+u); resp.StatusCode != 413 {
			t.Errorf("GET %s: %d %s, want 413", u, resp.StatusCode, body)
		}
	}
}

// TestSecurityHeaders: every answer, including errors, carries the CSP, and the CSP and the page
// name no other origin.
func TestSecurityHeaders(t *testing.T) {
	dir, _ := imageDir(t)
	_, ts := newTestServer(t, Options{Images: dir})
	for _, u := range []string{"/", "/static/app.js", "/api/info", "/api/analysis?image=nope.png", "/nope", "/?image=../x.png"} {
		resp, _ := get(t, ts.URL+u)
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "http") || strings.Contains(csp, "*") || strings.Contains(csp, "unsafe") {
			t.Errorf("GET %s: CSP %q", u, csp)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no nosniff", u)
		}
	}
	// The assets reference nothing outside this server.
	for _, name := range []string{"index.html", "app.js", "style.css"} {
		data, _ := assets.ReadFile("assets/" + name)
		for _, bad := range []string{"http:", "https:", "//cdn", "@import", "url(http"} {
			if bytes.Contains(data, []byte(bad)) {
				t.Errorf("%s contains %q", name, bad)
			}
		}
	}
}

func TestHostAndOrigin(t *testing.T) {
	_, ts := newTestServer(t, Options{LocalOnly: true})
	req, _ := http.NewRequest("GET", ts.URL+"/api/info", nil)
	req.Host = "attacker.example:80" // DNS rebinding: a foreign name resolving to 127.0.0.1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("foreign Host: %d, want 421", resp.StatusCode)
	}
	for _, host := range []string{"localhost", "127.0.0.1:8080", "[::1]:80"} {
		if !loopbackHost(host) {
			t.Errorf("%s refused", host)
		}
	}
	req, _ = http.NewRequest("POST", ts.URL+"/api/upload", strings.NewReader(""))
	req.Header.Set("Origin", "https://attacker.example")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin upload: %d, want 403", resp.StatusCode)
	}
}

// TestQueueFull: with one analysis running and QueueLen waiting, the next is a 503 with a
// Retry-After; the held ones complete once the first finishes.
func TestQueueFull(t *testing.T) {
	dir, _ := imageDir(t)
	entered := make(chan string, 4)
	release := make(chan struct{})
	s, ts := newTestServer(t, Options{Images: dir, QueueLen: 1, testHook: func(key string) {
		entered <- key
		<-release
	}})
	results := make(chan int, 2)
	go func() { resp, _ := get(t, ts.URL+"/api/analysis?image=cat.png"); results <- resp.StatusCode }()
	<-entered // cat.png holds the slot
	go func() { resp, _ := get(t, ts.URL+"/api/analysis?image=stripes.png"); results <- resp.StatusCode }()
	for s.queue.pending() < 2 {
		time.Sleep(time.Millisecond)
	}
	resp, body := get(t, ts.URL+"/api/analysis?image=sub/cat.png")
	if resp.StatusCode != 503 {
		t.Errorf("third analysis: %d %s, want 503", resp.StatusCode, body)
	}
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
	// Cached or joined requests never queue: the same image again joins the running pass.
	go func() { resp, _ := get(t, ts.URL+"/api/map.png?kind=mean&image=cat.png"); results <- resp.StatusCode }()
	close(release)
	for range 3 {
		if code := <-results; code != 200 {
			t.Errorf("held request: %d", code)
		}
	}
	if resp, _ := get(t, ts.URL+"/api/analysis?image=sub/cat.png"); resp.StatusCode != 200 {
		t.Errorf("after the queue drained: %d", resp.StatusCode)
	}
}

// TestConcurrentRequests: many clients at once on several images get consistent answers, and
// each image is analysed once.
func TestConcurrentRequests(t *testing.T) {
	dir, _ := imageDir(t)
	var passes sync.Map
	var total atomic.Int32
	_, ts := newTestServer(t, Options{Images: dir, QueueLen: 64, testHook: func(key string) {
		total.Add(1)
		n, _ := passes.LoadOrStore(key, new(atomic.Int32))
		n.(*atomic.Int32).Add(1)
	}})
	images := []string{"cat.png", "sub/cat.png", "stripes.png", "inside.png"}
	paths := []string{"/api/analysis?image=", "/api/map.png?kind=rollout&step=2&image=", "/api/latent.png?latent=3&image=", "/api/input.png?image=", "/api/thumb?image="}
	var wg sync.WaitGroup
	bodies := sync.Map{}
	for i := range 48 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := paths[i%len(paths)] + images[i%len(images)]
			resp, body := get(t, ts.URL+u)
			if resp.StatusCode != 200 {
				t.Errorf("GET %s: %d %s", u, resp.StatusCode, body)
				return
			}
			if prev, loaded := bodies.LoadOrStore(u, body); loaded && !bytes.Equal(prev.([]byte), body) && !strings.HasPrefix(u, "/api/analysis") {
				t.Errorf("GET %s: two different answers", u)
			}
		}()
	}
	wg.Wait()
	if n := total.Load(); n != int32(len(images)) {
		t.Errorf("%d analyses for %d images", n, len(images))
	}
}

// TestCache: the LRU keeps analyses within its byte budget and evicts the least recently used.
func TestCache(t *testing.T) {
	c := newLRU[int](100, 3)
	c.put("a", 1, 40)
	c.put("b", 2, 40)
	c.get("a") // b is now the oldest
	c.put("c", 3, 40)
	if _, ok := c.get("b"); ok {
		t.Error("b not evicted")
	}
	if _, ok := c.get("a"); !ok {
		t.Error("a evicted")
	}
	c.put("huge", 4, 101)
	if _, ok := c.get("huge"); ok {
		t.Error("an entry over the budget was kept")
	}
	c.put("d", 5, 1)
	c.put("e", 6, 1)
	if n, b := c.size(); n != 3 || b > 100 {
		t.Errorf("%d entries, %d bytes; want at most 3 entries, 100 bytes", n, b)
	}

	// The server's cache: a budget of one analysis recomputes when images alternate.
	dir, _ := imageDir(t)
	var passes atomic.Int32
	s, ts := newTestServer(t, Options{Images: dir, testHook: func(string) { passes.Add(1) }})
	get(t, ts.URL+"/api/analysis?image=cat.png")
	a, _ := s.cache.get("image:cat.png")
	s.cache = newLRU[*Analysis](a.Bytes(), 100)
	for _, name := range []string{"cat.png", "cat.png", "stripes.png", "stripes.png", "cat.png"} {
		get(t, ts.URL+"/api/analysis?image="+name)
	}
	if n := passes.Load(); n != 1+3 {
		t.Errorf("%d forward passes, want 4 (first, then cat, stripes, cat)", n)
	}
}

func TestRegisteredKind(t *testing.T) {
	// A class-specific kind, as another package would register it: the map is the class index.
	classKind := Kind{Name: "class-test", Title: "class", PerClass: true,
		Trace: core.Trace{DecoderOutput: true},
		Prepare: func(a *Analysis) (int64, error) {
			if a.Output.DecoderOutput == nil {
				return 0, fmt.Errorf("trace not merged")
			}
			a.Extra["class-test"] = len(a.Output.DecoderOutput)
			return 8, nil
		},
		Map: func(dst []float32, a *Analysis, q Query) error {
			for i := range dst {
				dst[i] = float32(q.Class) + float32(i)/float32(len(dst))
			}
			return nil
		}}
	dir, _ := imageDir(t)
	_, ts := newTestServer(t, Options{Images: dir, Kinds: append(Kinds(), classKind)})
	var info infoJSON
	getJSON(t, ts.URL+"/api/info", &info)
	if last := info.Kinds[len(info.Kinds)-1]; last.Name != "class-test" || !last.PerClass {
		t.Errorf("kinds: %+v", info.Kinds)
	}
	resp, _ := get(t, ts.URL+"/api/map.png?kind=class-test&class=3&image=cat.png")
	if resp.StatusCode != 200 || resp.Header.Get("X-Map-Min") != "3" {
		t.Errorf("class map: %d, min %q", resp.StatusCode, resp.Header.Get("X-Map-Min"))
	}
	resp, _ = get(t, ts.URL+"/api/map.png?kind=class-test&image=cat.png") // default: the top-1 class
	if resp.Header.Get("X-Map-Min") != "1" {
		t.Errorf("default class: min %q, want 1 (class_1)", resp.Header.Get("X-Map-Min"))
	}
	for _, bad := range []Kind{{Name: "mean", Map: classKind.Map}, {Name: "latent", Map: classKind.Map}, {Name: "Bad Name", Map: classKind.Map}, {Name: "nomap"}} {
		if _, err := New(loadTiny(t), Options{Kinds: append(Kinds(), bad)}); err == nil {
			t.Errorf("kind %q accepted", bad.Name)
		}
	}
}

// TestMapsMatchDefinitions checks the maps against their definitions (package attention's doc,
// Abnar & Zuidema 2020 for the rollout), recomputed in float64 from the forward pass's kept
// self-attention maps: Â_j = renorm(½·I + ½·mean_heads(A_j)), R_j = Â_j⋯Â_1, w_j = d·R_j,
// rollout map = w_j·C. Tolerance: 1e-5 of the map's largest value (float32 sums of ≤ 8 terms).
func TestMapsMatchDefinitions(t *testing.T) {
	m := loadTiny(t)
	img, err := m.Preprocessor.LoadImage(filepath.Join(tinyDir, "chelsea.png"), preprocess.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := analyze(m, img, Kinds())
	if err != nil {
		t.Fatal(err)
	}
	out, err := m.Forward(img.Pixels, 1, img.H, img.W, core.Trace{SelfAttentions: true, EncoderAttention: true, DecoderAttention: true})
	if err != nil {
		t.Fatal(err)
	}
	L, N, heads := out.Latents, img.H*img.W, out.Heads
	C, d := out.EncoderAttention, out.DecoderAttention // one cross head, one decoder head
	R := make([]float64, L*L)
	for i := range L {
		R[i*L+i] = 1
	}
	check := func(name string, got []float32, want []float64) {
		t.Helper()
		var scale, worst float64
		for _, v := range want {
			scale = max(scale, math.Abs(v))
		}
		for i := range want {
			worst = max(worst, math.Abs(float64(got[i])-want[i]))
		}
		if worst > 1e-5*scale {
			t.Errorf("%s: max |Δ| %.3g, scale %.3g", name, worst, scale)
		}
	}
	kind := func(name string) Kind {
		for _, k := range Kinds() {
			if k.Name == name {
				return k
			}
		}
		t.Fatalf("no kind %s", name)
		return Kind{}
	}
	mapOf := func(name string, q Query) []float32 {
		dst := make([]float32, N)
		if err := kind(name).Map(dst, a, q); err != nil {
			t.Fatal(err)
		}
		return dst
	}
	weighted := func(w []float64) []float64 {
		m := make([]float64, N)
		for l := range L {
			for p := range N {
				m[p] += w[l] * float64(C[l*N+p])
			}
		}
		return m
	}
	ones := make([]float64, L)
	for l := range ones {
		ones[l] = 1 / float64(L)
	}
	check("mean", mapOf("mean", Query{}), weighted(ones))
	d64 := make([]float64, L)
	for l := range L {
		d64[l] = float64(d[l])
	}
	check("decoder", mapOf("decoder", Query{}), weighted(d64))
	for j := 0; j <= len(out.SelfAttentions); j++ {
		if j > 0 {
			A := out.SelfAttentions[j-1]
			hat := make([]float64, L*L)
			for r := range L {
				var sum float64
				for c := range L {
					var mean float64
					for h := range heads {
						mean += float64(A[h*L*L+r*L+c])
					}
					v := 0.5 * mean / float64(heads)
					if r == c {
						v += 0.5
					}
					hat[r*L+c] = v
					sum += v
				}
				for c := range L {
					hat[r*L+c] /= sum
				}
			}
			next := make([]float64, L*L)
			for r := range L {
				for k := range L {
					for c := range L {
						next[r*L+c] += hat[r*L+k] * R[k*L+c]
					}
				}
			}
			R = next
		}
		w := make([]float64, L)
		for i := range L {
			for k := range L {
				w[k] += d64[i] * R[i*L+k]
			}
		}
		check(fmt.Sprintf("rollout weights, step %d", j), a.RolloutWeights[j], w)
		check(fmt.Sprintf("rollout map, step %d", j), mapOf("rollout", Query{Step: j}), weighted(w))
	}
	var ps float64
	for _, p := range a.Probs {
		ps += float64(p)
	}
	if math.Abs(ps-1) > 1e-6 {
		t.Errorf("probabilities sum to %v", ps)
	}
}

// TestConvModelMapsOnPixels: the conv model's attention lives on its pooled token grid (5×7 over
// a 24×32 image); the explorer draws each token over its 4×4 cell, so the decoder map on the
// pixels equals d·C of the forward pass at each pixel's token.
func TestConvModelMapsOnPixels(t *testing.T) {
	m, err := core.Load("../testdata/tiny-conv")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	img, err := m.Preprocessor.LoadImage("../testdata/tiny-conv/camera.png", preprocess.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := analyze(m, img, Kinds())
	if err != nil {
		t.Fatal(err)
	}
	out, err := m.Forward(img.Pixels, 1, img.H, img.W, core.Trace{EncoderAttention: true, DecoderAttention: true})
	if err != nil {
		t.Fatal(err)
	}
	g := out.Grid
	if a.H != 24 || a.W != 32 || g.Rows != 5 || g.Cols != 7 {
		t.Fatalf("map grid %d×%d over tokens %d×%d, want 24×32 over 5×7", a.H, a.W, g.Rows, g.Cols)
	}
	var dec Kind
	for _, k := range Kinds() {
		if k.Name == "decoder" {
			dec = k
		}
	}
	got := make([]float32, 24*32)
	if err := dec.Map(got, a, Query{}); err != nil {
		t.Fatal(err)
	}
	L, N := out.Latents, g.Tokens()
	for y := 0; y < 24; y++ {
		for x := 0; x < 32; x++ {
			i, j := min(y/4, g.Rows-1), min(x/4, g.Cols-1)
			var want float64
			for l := 0; l < L; l++ {
				want += float64(out.DecoderAttention[l]) * float64(out.EncoderAttention[l*N+i*g.Cols+j])
			}
			if d := math.Abs(float64(got[y*32+x]) - want); d > 1e-6 {
				t.Fatalf("pixel (%d, %d): %g, want %g (token %d, %d)", y, x, got[y*32+x], want, i, j)
			}
		}
	}
}

package serve

import (
	"fmt"
	"image/color"
	"math"
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
	"github.com/perceiverkit/perceiver/explain"
	"github.com/perceiverkit/perceiver/viz"
)

// fixtureServer serves one fixture's model with a folder holding its image as img.png.
func fixtureServer(t *testing.T, dir, image string, opt Options) (*Server, string, *core.Model) {
	t.Helper()
	m, err := core.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	data, err := os.ReadFile(filepath.Join(dir, image))
	if err != nil {
		t.Fatal(err)
	}
	opt.Images = t.TempDir()
	if err := os.WriteFile(filepath.Join(opt.Images, "img.png"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := New(m, opt)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() { ts.Close(); s.Close() })
	return s, ts.URL, m
}

// TestExplainKindsMatchExplain: the class-specific map of kind K for class c is explain's map of
// method K for target c (explain is checked against PyTorch autograd in its own tests) drawn on
// the pixels: pixel maps as they are, token maps with each token over its cell. For the conv
// fixture the tokens are a 5×7 grid of 4×4 cells over 24×32 pixels, and pixel (y, x) must take
// token (⌊y/4⌋, ⌊x/4⌋), clamped, as in TestConvModelMapsOnPixels. Checked twice: the map the
// server keeps, to 1e-6 of its largest magnitude (the same computation, float32), and the PNG
// in the gray colour map, whose 8-bit level must be the reference's bin of the range (1/256 of
// it; 1e-5 slack for the range's 6 printed digits), with X-Map-Min/Max the map's range
// (symmetric about zero for signed maps) to 1e-5.
func TestExplainKindsMatchExplain(t *testing.T) {
	for _, fx := range []struct{ dir, image string }{{"../testdata/tiny", "chelsea.png"}, {"../testdata/tiny-conv", "camera.png"}} {
		t.Run(filepath.Base(fx.dir), func(t *testing.T) {
			s, url, m := fixtureServer(t, fx.dir, fx.image, Options{})
			img, err := m.Preprocessor.LoadImage(filepath.Join(fx.dir, fx.image), preprocess.Options{})
			if err != nil {
				t.Fatal(err)
			}
			H, W := img.H, img.W
			var an analysisJSON
			getJSON(t, url+"/api/analysis?image=img.png", &an)
			classes := []int{an.Top[0].Index, an.Top[2].Index}
			a, ok := s.cache.get("image:img.png")
			if !ok {
				t.Fatal("analysis not cached")
			}
			for _, name := range ExplainMethods {
				for _, c := range classes {
					ref, found := explain.Lookup(name)
					if !found {
						t.Fatalf("explain has no %s", name)
					}
					want, err := ref.Compute(explain.Input{Model: m, Pixels: img.Pixels, H: H, W: W, Target: c}, explain.DefaultOptions())
					if err != nil {
						t.Fatal(err)
					}
					g := want.Grid
					px := make([]float64, H*W) // the reference on the pixels
					for y := range H {
						for x := range W {
							i, j := y, x
							if !g.Pixel() {
								i, j = min(y/g.Stride, g.Rows-1), min(x/g.Stride, g.Cols-1)
							}
							px[y*W+x] = float64(want.Values[i*g.Cols+j])
						}
					}
					if name == "chefer" && fx.dir == "../testdata/tiny-conv" && (g.Pixel() || g.Stride != 4) {
						t.Fatalf("chefer's grid on the conv fixture %v: want 4×4 cells", g)
					}
					lo, hi, scale := math.Inf(1), math.Inf(-1), 0.0
					for _, v := range px {
						lo, hi, scale = min(lo, v), max(hi, v), max(scale, math.Abs(v))
					}
					if want.Signed {
						lo, hi = -scale, scale
					}
					u := fmt.Sprintf("%s/api/map.png?image=img.png&kind=%s&class=%d&cmap=gray", url, name, c)
					resp, body := get(t, u)
					if resp.StatusCode != 200 {
						t.Fatalf("%s: %d %s", u, resp.StatusCode, body)
					}
					if got := resp.Header.Get("X-Map-Signed"); got != strconv.FormatBool(want.Signed) {
						t.Errorf("%s class %d: X-Map-Signed %q, explain says %v", name, c, got, want.Signed)
					}
					gotLo, _ := strconv.ParseFloat(resp.Header.Get("X-Map-Min"), 64)
					gotHi, _ := strconv.ParseFloat(resp.Header.Get("X-Map-Max"), 64)
					if math.Abs(gotLo-lo) > 1e-5*scale || math.Abs(gotHi-hi) > 1e-5*scale {
						t.Errorf("%s class %d: range %g..%g, want %g..%g", name, c, gotLo, gotHi, lo, hi)
					}
					kept, ok := a.costlyMap(name + ":c" + strconv.Itoa(c))
					if !ok {
						t.Fatalf("%s class %d: map not kept with the analysis", name, c)
					}
					var worst float64
					for p, v := range px {
						worst = max(worst, math.Abs(float64(kept[p])-v))
					}
					if worst > 1e-6*scale {
						t.Errorf("%s class %d: kept map off by %.3g (scale %.3g)", name, c, worst, scale)
					}
					// Gray level g is the 8-bit level ⌊256·t⌋ itself (viz samples level i at
					// (i+½)/256, and round(255·(i+½)/256) = i), so the value lies in its bin.
					png := decodePNG(t, body)
					bad := 0
					for y := range H {
						for x := range W {
							r, _, _, _ := png.At(x, y).RGBA()
							g := float64(r >> 8)
							t0 := (px[y*W+x] - gotLo) / (gotHi - gotLo)
							if t0 < g/256-1e-5 || t0 > (g+1)/256+1e-5 {
								bad++
							}
						}
					}
					if bad > 0 {
						t.Errorf("%s class %d: %d of %d pixels outside their gray level's bin", name, c, bad, H*W)
					}
				}
			}
		})
	}
}

// TestExplainKindsDeclared: /api/info lists every explain kind as per-class and costly, signed
// exactly when explain's maps are (checked on a map of each method).
func TestExplainKindsDeclared(t *testing.T) {
	m := loadTiny(t)
	img, err := m.Preprocessor.LoadImage(filepath.Join(tinyDir, "chelsea.png"), preprocess.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, ts := newTestServer(t, Options{})
	var info infoJSON
	getJSON(t, ts.URL+"/api/info", &info)
	byName := map[string]kindInfo{}
	for _, k := range info.Kinds {
		byName[k.Name] = k
	}
	opt := explain.DefaultOptions()
	opt.Steps, opt.Samples, opt.Window, opt.Stride = 4, 2, 4, 4
	for _, name := range append(ExplainMethods, "occlusion") {
		ref, _ := explain.Lookup(name)
		mp, err := ref.Compute(explain.Input{Model: m, Pixels: img.Pixels, H: img.H, W: img.W, Target: 0}, opt)
		if err != nil {
			t.Fatal(err)
		}
		k, err := ExplainKind(name, opt)
		if err != nil {
			t.Fatal(err)
		}
		if k.Signed != mp.Signed || !k.PerClass || !k.Costly {
			t.Errorf("kind %s: signed %v per-class %v costly %v; explain's map signed %v", name, k.Signed, k.PerClass, k.Costly, mp.Signed)
		}
		if name == "occlusion" {
			if _, listed := byName[name]; listed {
				t.Error("occlusion is offered by default")
			}
			continue
		}
		if ki := byName[name]; ki.Signed != mp.Signed || !ki.PerClass || !ki.Costly {
			t.Errorf("/api/info kind %s: %+v; explain's map signed %v", name, ki, mp.Signed)
		}
	}
	if _, err := ExplainKind("no-such-method", opt); err == nil || !strings.Contains(err.Error(), "no-such-method") {
		t.Errorf("unknown method: %v", err)
	}
}

// TestCostlyMapOnce: many concurrent requests for one (kind, class) compute it once, other
// classes once each, and later requests use the kept map; the analysis' bytes in the cache grow
// by what it keeps.
func TestCostlyMapOnce(t *testing.T) {
	dir, _ := imageDir(t)
	var mu sync.Mutex
	computed := map[string]int{}
	s, ts := newTestServer(t, Options{Images: dir, QueueLen: 64, testHook: func(key string) {
		mu.Lock()
		computed[key]++
		mu.Unlock()
		time.Sleep(20 * time.Millisecond) // keep the first in flight while the others arrive
	}})
	var wg sync.WaitGroup
	bodies := make([][]byte, 40)
	for i := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := fmt.Sprintf("%s/api/map.png?image=cat.png&kind=%s&class=%d", ts.URL, []string{"chefer", "saliency"}[i%2], i%4)
			resp, body := get(t, u)
			if resp.StatusCode != 200 {
				t.Errorf("%s: %d %s", u, resp.StatusCode, body)
			}
			bodies[i] = body
		}()
	}
	wg.Wait()
	for i := range bodies {
		if j := i % 4; string(bodies[i]) != string(bodies[j]) {
			t.Errorf("request %d and %d for one map: different answers", i, j)
		}
	}
	get(t, ts.URL+"/api/map.png?image=cat.png&kind=chefer&class=0")
	want := map[string]int{"image:cat.png": 1, "image:cat.png|chefer:c0": 1, "image:cat.png|chefer:c2": 1, "image:cat.png|saliency:c1": 1, "image:cat.png|saliency:c3": 1}
	mu.Lock()
	if fmt.Sprint(computed) != fmt.Sprint(want) {
		t.Errorf("computed %v, want each once: %v", computed, want)
	}
	mu.Unlock()
	a, _ := s.cache.get("image:cat.png")
	if n, b := s.cache.size(); n != 1 || b != a.Bytes() || b-a.bytes < 4*4*12*16 {
		t.Errorf("cache: %d entries, %d bytes; the analysis %d bytes of which %d are maps", n, b, a.Bytes(), a.Bytes()-a.bytes)
	}
}

// TestCostlyMapBudget: the maps kept count in the cache's budget: with room for the analysis
// alone, keeping a map evicts it, and the next request analyses the image again.
func TestCostlyMapBudget(t *testing.T) {
	dir, _ := imageDir(t)
	var passes atomic.Int32
	s, ts := newTestServer(t, Options{Images: dir, testHook: func(key string) {
		if !strings.Contains(key, "|") {
			passes.Add(1)
		}
	}})
	get(t, ts.URL+"/api/analysis?image=cat.png")
	a, _ := s.cache.get("image:cat.png")
	s.cache = newLRU[*Analysis](a.Bytes(), 100)
	s.cache.put("image:cat.png", a, a.Bytes())
	if resp, body := get(t, ts.URL+"/api/map.png?image=cat.png&kind=saliency&class=1"); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if n, _ := s.cache.size(); n != 0 {
		t.Errorf("%d analyses cached after a map outgrew the budget, want 0", n)
	}
	get(t, ts.URL+"/api/analysis?image=cat.png")
	if n := passes.Load(); n != 2 {
		t.Errorf("%d forward passes, want 2", n)
	}
}

// TestCostlyMapQueue: costly maps run in the work queue with the analyses: with one running and
// QueueLen waiting, another costly map (or analysis) is a 503 with Retry-After, and the held
// ones finish afterwards.
func TestCostlyMapQueue(t *testing.T) {
	dir, _ := imageDir(t)
	entered := make(chan string, 4)
	release := make(chan struct{})
	var hold atomic.Bool
	s, ts := newTestServer(t, Options{Images: dir, QueueLen: 1, testHook: func(key string) {
		if hold.Load() {
			entered <- key
			<-release
		}
	}})
	get(t, ts.URL+"/api/analysis?image=cat.png")
	hold.Store(true)
	results := make(chan int, 3)
	fetch := func(u string) {
		resp, body := get(t, ts.URL+u)
		if resp.StatusCode != 200 {
			t.Logf("%s: %s", u, body)
		}
		results <- resp.StatusCode
	}
	go fetch("/api/map.png?image=cat.png&kind=integrated-gradients&class=0")
	if key := <-entered; key != "image:cat.png|integrated-gradients:c0" {
		t.Fatalf("first job %q", key)
	}
	go fetch("/api/map.png?image=cat.png&kind=chefer&class=1")
	for s.costly.pending() < 2 {
		time.Sleep(time.Millisecond)
	}
	// Costly maps have their own queue (issue 23 item 9): a new image's analysis is not held up.
	hold.Store(false)
	if resp, body := get(t, ts.URL+"/api/analysis?image=stripes.png"); resp.StatusCode != http.StatusOK {
		t.Errorf("a new image's analysis with the costly queue full: %d %s, want 200", resp.StatusCode, body)
	}
	hold.Store(true)
	for _, u := range []string{"/api/map.png?image=cat.png&kind=smoothgrad&class=2"} {
		resp, body := get(t, ts.URL+u)
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("%s with the queue full: %d %s, want 503", u, resp.StatusCode, body)
		}
		if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 {
			t.Errorf("%s: Retry-After %q", u, resp.Header.Get("Retry-After"))
		}
	}
	// A second request for the running map joins it (or finds it kept): no job of its own.
	go fetch("/api/map.png?image=cat.png&kind=integrated-gradients&class=0")
	close(release)
	for range 3 {
		if code := <-results; code != 200 {
			t.Errorf("held request: %d", code)
		}
	}
	if key := <-entered; key != "image:cat.png|chefer:c1" {
		t.Errorf("second job %q", key)
	}
	select {
	case key := <-entered:
		t.Errorf("a third job ran: %q", key)
	default:
	}
}

// TestSignedMapColours: a signed kind's map comes in the diverging colour map unless the request
// names another, which it then gets; every pixel is one of that map's 256 levels (viz samples
// level i at (i+½)/256).
func TestSignedMapColours(t *testing.T) {
	dir, _ := imageDir(t)
	_, ts := newTestServer(t, Options{Images: dir})
	for _, c := range []struct {
		query string
		cm    viz.Colormap
	}{{"", viz.Diverging}, {"&cmap=diverging", viz.Diverging}, {"&cmap=viridis", viz.Viridis}} {
		levels := map[color.RGBA]bool{}
		for i := range 256 {
			levels[c.cm((float64(i)+0.5)/256)] = true
		}
		resp, body := get(t, ts.URL+"/api/map.png?image=cat.png&kind=input-x-gradient&class=1"+c.query)
		if resp.StatusCode != 200 || resp.Header.Get("X-Map-Signed") != "true" {
			t.Fatalf("%q: %d, X-Map-Signed %q", c.query, resp.StatusCode, resp.Header.Get("X-Map-Signed"))
		}
		img := decodePNG(t, body)
		off := 0
		for y := range 12 {
			for x := range 16 {
				r, g, b, a := img.At(x, y).RGBA()
				if !levels[color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), uint8(a >> 8)}] {
					off++
				}
			}
		}
		if off > 0 {
			t.Errorf("%q: %d pixels not in the colour map", c.query, off)
		}
	}
	resp, _ := get(t, ts.URL+"/api/map.png?image=cat.png&kind=chefer&class=1")
	if resp.Header.Get("X-Map-Signed") != "false" {
		t.Errorf("chefer: X-Map-Signed %q", resp.Header.Get("X-Map-Signed"))
	}
}

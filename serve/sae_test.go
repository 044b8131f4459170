package serve

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestSAERoutes serves a features folder: features.json as is, its PNGs by name only (nothing
// outside the folder), and an image's active entries from the Active callback, largest first.
func TestSAERoutes(t *testing.T) {
	dir, _ := imageDir(t)
	fdir := t.TempDir()
	os.WriteFile(filepath.Join(fdir, "features.json"), []byte(`{"dict":2,"features":[]}`), 0o644)
	os.WriteFile(filepath.Join(fdir, "feature-00001.png"), stripesPNG(t), 0o644)
	os.WriteFile(filepath.Join(filepath.Dir(fdir), "secret.png"), stripesPNG(t), 0o644)
	calls := 0
	_, ts := newTestServer(t, Options{Images: dir, SAE: &SAE{Dir: fdir, Active: func(px []float32, h, w int) ([]ActiveFeature, error) {
		calls++
		if len(px) != 3*h*w {
			t.Errorf("Active got %d pixels for %d×%d", len(px), h, w)
		}
		return []ActiveFeature{{Index: 3, Latent: 1, Value: 0.5}, {Index: 7, Latent: 0, Value: 2}}, nil
	}}})
	var info struct{ SAE bool }
	getJSON(t, ts.URL+"/api/info", &info)
	if !info.SAE {
		t.Error("/api/info does not announce the features view")
	}
	var f struct{ Dict int }
	getJSON(t, ts.URL+"/api/sae", &f)
	if f.Dict != 2 {
		t.Errorf("/api/sae: %+v", f)
	}
	if resp, body := get(t, ts.URL+"/api/sae/png?name=feature-00001.png"); resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/png" {
		t.Errorf("montage: %d %s", resp.StatusCode, body)
	}
	for _, name := range []string{"../secret.png", "feature-00001.png/..", "secret.png", "feature-00002.png"} {
		if resp, _ := get(t, ts.URL+"/api/sae/png?name="+urlQueryEscape(name)); resp.StatusCode != 400 && resp.StatusCode != 404 {
			t.Errorf("name %q: %d", name, resp.StatusCode)
		}
	}
	var act struct {
		Features []ActiveFeature
		Total    int
	}
	getJSON(t, ts.URL+"/api/sae/active?image=cat.png", &act)
	if act.Total != 2 || len(act.Features) != 2 || act.Features[0].Index != 7 || calls != 1 {
		t.Errorf("active: %+v after %d calls", act, calls)
	}
	// Without --sae the routes are 404.
	_, plain := newTestServer(t, Options{Images: dir})
	for _, u := range []string{"/api/sae", "/api/sae/png?name=frequency.png", "/api/sae/active?image=cat.png"} {
		resp, body := get(t, plain.URL+u)
		var e struct{ Error string }
		if resp.StatusCode != 404 || json.Unmarshal(body, &e) != nil {
			t.Errorf("%s without --sae: %d %s", u, resp.StatusCode, body)
		}
	}
}

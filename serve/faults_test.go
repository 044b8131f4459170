package serve

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/core/weights"
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

package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/perceiverkit/perceiver/core/weights"
)

// The learned and conv fixtures (copies of ../shared/fixtures/tiny-learned and tiny-conv): each
// holds the forward tensors of Hugging Face's PerceiverForImageClassificationLearned or
// …ConvProcessing on one photo, so every command can be checked on every model.
var archFixtures = map[string]string{"learned": "../../testdata/tiny-learned", "conv": "../../testdata/tiny-conv"}

func fixtureExpected(t *testing.T, dir string) *weights.File {
	t.Helper()
	f, err := weights.OpenSafetensors(filepath.Join(dir, "expected.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestDumpEveryArchitecture runs dump from each fixture's photo and compares every forward tensor
// with Hugging Face's at the parity bar, 1e-4 of the largest magnitude.
func TestDumpEveryArchitecture(t *testing.T) {
	for kind, dir := range archFixtures {
		t.Run(kind, func(t *testing.T) {
			exp := fixtureExpected(t, dir)
			out := filepath.Join(t.TempDir(), "dump.safetensors")
			runOK(t, "dump", "--model", dir, "--image", filepath.Join(dir, exp.Metadata["image"]), "--out", out)
			got := openRaw(t, out)
			n := 0
			for name, ref := range exp.Tensors {
				if strings.HasPrefix(name, "grad.") || strings.HasPrefix(name, "map.") || name == "hidden_states.last" {
					continue
				}
				g := got.Tensors[name]
				if g == nil || !slices.Equal(g.Shape, ref.Shape) {
					t.Errorf("%s: dumped %v, want shape %v", name, g, ref.Shape)
					continue
				}
				var d, r float64
				for i := range ref.Data {
					d = max(d, math.Abs(float64(g.Data[i]-ref.Data[i])))
					r = max(r, math.Abs(float64(ref.Data[i])))
				}
				if d > 1e-4*r {
					t.Errorf("%s: max |Δ| %.3g > 1e-4 × %.3g", name, d, r)
				}
				n++
			}
			if n < 10 {
				t.Errorf("only %d tensors compared", n)
			}
		})
	}
}

// TestClassifyEveryArchitecture: classify's top class is the argmax of Hugging Face's logits.
func TestClassifyEveryArchitecture(t *testing.T) {
	for kind, dir := range archFixtures {
		t.Run(kind, func(t *testing.T) {
			exp := fixtureExpected(t, dir)
			out := runOK(t, "classify", "--model", dir, "--json", "--top", "1", filepath.Join(dir, exp.Metadata["image"]))
			var got struct{ Top []prediction }
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if want := argmax(exp.Tensors["logits"].Data); len(got.Top) != 1 || got.Top[0].Index != want {
				t.Errorf("top %+v, want class %d", got.Top, want)
			}
		})
	}
}

// TestAttentionConvGrid draws the conv model's maps: raw maps live on the 5×7 token grid with its
// geometry in the metadata, and the decoder map equals d·C computed here in float64 from Hugging
// Face's cross-attentions.
func TestAttentionConvGrid(t *testing.T) {
	dir := archFixtures["conv"]
	exp := fixtureExpected(t, dir)
	out := t.TempDir()
	runOK(t, "attention", "--model", dir, "--image", filepath.Join(dir, exp.Metadata["image"]), "--out", out, "--raw", "--overlay", "--maps", "latents,decoder")
	raw := openRaw(t, filepath.Join(out, "maps.safetensors"))
	md := raw.Metadata
	if md["grid_rows"] != "5" || md["grid_cols"] != "7" || md["grid_stride"] != "4" || md["grid_offset"] != "2" ||
		md["image_height"] != "24" || md["image_width"] != "32" {
		t.Errorf("grid metadata %v, want 5×7 tokens of stride 4, offset 2 over 24×32", md)
	}
	dec := raw.Tensors["decoder"]
	if dec == nil || !slices.Equal(dec.Shape, []int{5, 7}) {
		t.Fatalf("decoder map %v, want [5 7]", dec)
	}
	cross, d := exp.Tensors["cross_attentions.encoder"].Data, exp.Tensors["cross_attentions.decoder"].Data
	want := make([]float64, 35)
	for l, w := range d {
		for n := range want {
			want[n] += float64(w) * float64(cross[l*35+n])
		}
	}
	closeTo(t, "decoder", dec.Data, want)
}

// TestLayersCatalogue: probe layers lists exactly the tensors dump writes, with their shapes, for
// each architecture, and maps Hugging Face's 56 hidden_states entries onto the 49 distinct ones.
func TestLayersCatalogue(t *testing.T) {
	for kind, dir := range map[string]string{"fourier": tinyDir, "learned": archFixtures["learned"], "conv": archFixtures["conv"]} {
		t.Run(kind, func(t *testing.T) {
			var cat struct {
				Grid    struct{ Rows, Cols int }
				Tensors []struct {
					Name        string
					Shape       []int
					HuggingFace string `json:"hugging_face"`
					Layer       int
				}
			}
			if err := json.Unmarshal([]byte(runOK(t, "layers", "--model", dir, "--json")), &cat); err != nil {
				t.Fatal(err)
			}
			img := map[string]string{"fourier": "chelsea.png", "learned": "coffee.png", "conv": "camera.png"}[kind]
			out := filepath.Join(t.TempDir(), "dump.safetensors")
			runOK(t, "dump", "--model", dir, "--image", filepath.Join(dir, img), "--out", out)
			dump := openRaw(t, out)
			if len(cat.Tensors) != len(dump.Tensors) {
				t.Errorf("catalogue lists %d tensors, dump wrote %d", len(cat.Tensors), len(dump.Tensors))
			}
			for _, c := range cat.Tensors {
				if d := dump.Tensors[c.Name]; d == nil || !slices.Equal(d.Shape, c.Shape) {
					t.Errorf("%s %v: dump has %v", c.Name, c.Shape, d)
				}
			}
		})
	}
	// Full size: 48 applications over 6 shared layers; Hugging Face's hidden_states[0…55] each
	// name exactly one of our states.
	var cat struct {
		Grid    struct{ Rows, Cols int }
		Tensors []struct {
			Name        string
			HuggingFace string `json:"hugging_face"`
			Layer       int
		}
	}
	if err := json.Unmarshal([]byte(runOK(t, "layers", "--random", "--arch", "conv", "--json")), &cat); err != nil {
		t.Fatal(err)
	}
	if cat.Grid.Rows != 55 || cat.Grid.Cols != 55 {
		t.Errorf("conv grid at 224²: %d×%d, want 55×55", cat.Grid.Rows, cat.Grid.Cols)
	}
	seen := map[int]int{}
	for _, c := range cat.Tensors {
		if strings.HasPrefix(c.Name, "attentions.") {
			j, _ := strconv.Atoi(strings.TrimPrefix(c.Name, "attentions."))
			if c.Layer != j%6 {
				t.Errorf("%s uses layer %d, want %d", c.Name, c.Layer, j%6)
			}
		}
		if !strings.HasPrefix(c.Name, "hidden_states.") {
			continue
		}
		for _, part := range strings.Split(c.HuggingFace, "[")[1:] {
			k, err := strconv.Atoi(part[:strings.Index(part, "]")])
			if err != nil {
				t.Fatalf("%s: %q", c.Name, c.HuggingFace)
			}
			seen[k]++
		}
	}
	for k := 0; k < 56; k++ {
		if seen[k] != 1 {
			t.Errorf("hidden_states[%d] named %d times", k, seen[k])
		}
	}
	if len(seen) != 56 {
		t.Errorf("%d Hugging Face indices named, want 56", len(seen))
	}
}

// TestHubIdsOfEveryArchitecture downloads deepmind/vision-perceiver-learned and -conv from a local
// stand-in for the hub (HF_ENDPOINT on loopback) whose main branch, like the real conv repository's,
// holds pytorch_model.bin and no model.safetensors, then classifies with each hub id.
func TestHubIdsOfEveryArchitecture(t *testing.T) {
	const commit = "3333333333333333333333333333333333333333"
	repos := map[string]string{"deepmind/vision-perceiver-learned": archFixtures["learned"], "deepmind/vision-perceiver-conv": archFixtures["conv"]}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 5)
		dir, ok := repos[strings.Join(parts[:min(2, len(parts))], "/")]
		if len(parts) != 5 || parts[2] != "resolve" || !ok {
			w.Header().Set("X-Error-Code", "RepoNotFound")
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("X-Repo-Commit", commit)
		file := parts[4]
		data, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil || file == "model.safetensors" {
			w.Header().Set("X-Error-Code", "EntryNotFound")
			w.WriteHeader(http.StatusNotFound)
			return
		}
		sum := sha256.Sum256(data)
		w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:])+`"`)
		http.ServeContent(w, r, file, time.Time{}, bytes.NewReader(data))
	}))
	defer srv.Close()
	t.Setenv("HF_ENDPOINT", srv.URL)
	t.Setenv("HF_HUB_CACHE", t.TempDir())
	t.Setenv("HF_HUB_OFFLINE", "")
	for id, dir := range repos {
		exp := fixtureExpected(t, dir)
		out, errOut, code := run(t, "classify", "--model", id, "--json", "--top", "1", filepath.Join(dir, exp.Metadata["image"]))
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", id, code, errOut)
		}
		var got struct{ Top []prediction }
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%s: %v: %s", id, err, out)
		}
		if want := argmax(exp.Tensors["logits"].Data); got.Top[0].Index != want {
			t.Errorf("%s: top %+v, want class %d", id, got.Top, want)
		}
	}
}

// TestExtractEveryArchitecture: extract runs the learned and conv models over an image folder,
// and each row's logits and decoder output equal, bit for bit, what dump writes for that image.
func TestExtractEveryArchitecture(t *testing.T) {
	data := imageFolder(t)
	for kind, dir := range archFixtures {
		t.Run(kind, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "feat.parquet")
			if _, stderr, code := run(t, "extract", "--model", dir, "--data", data, "--out", out, "--layers", "all", "--batch", "2", "--quiet"); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			tab, _ := loadTable(t, out)
			if tab.Len() != 4 {
				t.Fatalf("%d rows, want 4", tab.Len())
			}
			dump := filepath.Join(t.TempDir(), "dump.safetensors")
			runOK(t, "dump", "--model", dir, "--image", filepath.Join(data, "man/camera.png"), "--out", dump)
			f := openRaw(t, dump)
			for column, tensor := range map[string]string{"logits": "logits", "decoder": "decoder_output"} {
				if got := rowOf(t, tab, "man/camera.png", column); !slices.Equal(got, f.Tensors[tensor].Data) {
					t.Errorf("%s differs from the dump:\n got %v\nwant %v", column, got, f.Tensors[tensor].Data)
				}
			}
		})
	}
}

package main

import (
	"bytes"
	"image"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/perceiverkit/perceiver/core/preprocess"
	"github.com/perceiverkit/perceiver/core/weights"
	"github.com/perceiverkit/perceiver/viz"
)

// The references here are Hugging Face's tensors for the tiny model on chelsea.png
// (../../testdata/tiny/expected.safetensors: cross_attentions.encoder [1,1,8,192],
// cross_attentions.decoder [1,1,1,8], attentions.0..3 [1,4,8,8]), reduced to maps by the
// float64 code below, written from the definitions and not through package attention. Our
// pixels equal Hugging Face's within 1e-6, so every map must agree within 1e-4 of its largest
// magnitude (the bar).

const mapTol = 1e-4

var tinyImage = filepath.Join(tinyDir, "chelsea.png")

// referenceMaps computes every map from Hugging Face's attention tensors, in float64.
type referenceMaps struct {
	h, w, latents int
	cross         [][]float64 // [L][N]
	decoder       []float64   // [L]
	mean, dec     []float64   // [N]
	rollW, roll   []float64   // [L], [N]
}

func newReferenceMaps(t *testing.T) *referenceMaps {
	t.Helper()
	exp := expected(t)
	px := exp.Tensors["pixel_values"].Shape
	enc := exp.Tensors["cross_attentions.encoder"]
	L, N := enc.Shape[2], enc.Shape[3]
	r := &referenceMaps{h: px[2], w: px[3], latents: L}
	if enc.Shape[1] != 1 || N != r.h*r.w {
		t.Fatalf("unexpected reference shapes: encoder %v, pixels %v", enc.Shape, px)
	}
	for l := range L {
		row := make([]float64, N)
		for p := range N {
			row[p] = float64(enc.Data[l*N+p])
		}
		r.cross = append(r.cross, row)
	}
	for _, v := range exp.Tensors["cross_attentions.decoder"].Data {
		r.decoder = append(r.decoder, float64(v))
	}
	weighted := func(w []float64) []float64 {
		m := make([]float64, N)
		for l := range L {
			for p := range N {
				m[p] += w[l] * r.cross[l][p]
			}
		}
		return m
	}
	uniform := make([]float64, L)
	for l := range uniform {
		uniform[l] = 1 / float64(L)
	}
	r.mean = weighted(uniform)
	r.dec = weighted(r.decoder)

	// Rollout (Abnar & Zuidema): R = Â_J ⋯ Â_1, Â = rows renormalised of ½I + ½·mean over heads.
	R := identity(L)
	for j := 0; ; j++ {
		a, ok := exp.Tensors["attentions."+itoa(j)]
		if !ok {
			if j != 4 {
				t.Fatalf("reference has %d self-attention maps, want 4", j)
			}
			break
		}
		heads := a.Shape[1]
		hat := make([][]float64, L)
		for i := range L {
			hat[i] = make([]float64, L)
			var sum float64
			for k := range L {
				var m float64
				for h := range heads {
					m += float64(a.Data[(h*L+i)*L+k])
				}
				v := 0.5 * m / float64(heads)
				if i == k {
					v += 0.5
				}
				hat[i][k] = v
				sum += v
			}
			for k := range L {
				hat[i][k] /= sum
			}
		}
		R = matmul(hat, R)
	}
	r.rollW = make([]float64, L)
	for k := range L {
		for i := range L {
			r.rollW[k] += r.decoder[i] * R[i][k]
		}
	}
	r.roll = weighted(r.rollW)
	return r
}

func itoa(i int) string { return string(rune('0' + i)) }

func identity(n int) [][]float64 {
	m := make([][]float64, n)
	for i := range m {
		m[i] = make([]float64, n)
		m[i][i] = 1
	}
	return m
}

func matmul(a, b [][]float64) [][]float64 {
	out := make([][]float64, len(a))
	for i := range a {
		out[i] = make([]float64, len(b[0]))
		for k := range b {
			for j := range b[0] {
				out[i][j] += a[i][k] * b[k][j]
			}
		}
	}
	return out
}

// closeTo checks got against want within mapTol of want's largest magnitude.
func closeTo(t *testing.T, name string, got []float32, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d values, want %d", name, len(got), len(want))
		return
	}
	var d, r float64
	for i := range want {
		d = max(d, math.Abs(float64(got[i])-want[i]))
		r = max(r, math.Abs(want[i]))
	}
	if d > mapTol*r || math.IsNaN(d) {
		t.Errorf("%s: max |Δ| %.3g > %g × %.3g", name, d, mapTol, r)
	}
}

func runOK(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := run(t, args...)
	if code != 0 {
		t.Fatalf("%v: exit %d: %s", args, code, errOut)
	}
	return out
}

func openRaw(t *testing.T, path string) *weights.File {
	t.Helper()
	f, err := weights.OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestAttentionRawMapsMatchReference(t *testing.T) {
	ref := newReferenceMaps(t)
	dir := t.TempDir()
	out := runOK(t, "attention", "--model", tinyDir, "--image", tinyImage, "--out", dir, "--raw", "--latents", "5,0-2")
	for _, name := range []string{"input.png", "latents.png", "mean.png", "decoder.png", "rollout.png", "maps.safetensors"} {
		if !strings.Contains(out, "wrote "+filepath.Join(dir, name)+"\n") {
			t.Errorf("output does not report %s:\n%s", name, out)
		}
	}
	raw := openRaw(t, filepath.Join(dir, "maps.safetensors"))
	if got := raw.Metadata["latents"]; got != "5,0,1,2" {
		t.Errorf("latents metadata %q, want 5,0,1,2", got)
	}
	lat := raw.Tensors["latents"]
	if lat == nil || !slices.Equal(lat.Shape, []int{4, ref.h, ref.w}) {
		t.Fatalf("latents tensor %v, want [4 %d %d]", lat, ref.h, ref.w)
	}
	n := ref.h * ref.w
	for i, l := range []int{5, 0, 1, 2} {
		closeTo(t, "latent "+itoa(l), lat.Data[i*n:(i+1)*n], ref.cross[l])
	}
	for _, c := range []struct {
		name string
		want []float64
		dims []int
	}{
		{"mean", ref.mean, []int{ref.h, ref.w}},
		{"decoder", ref.dec, []int{ref.h, ref.w}},
		{"rollout", ref.roll, []int{ref.h, ref.w}},
		{"decoder_attention", ref.decoder, []int{ref.latents}},
		{"rollout_weights", ref.rollW, []int{ref.latents}},
	} {
		g := raw.Tensors[c.name]
		if g == nil {
			t.Errorf("maps.safetensors lacks %s", c.name)
			continue
		}
		if !slices.Equal(g.Shape, c.dims) {
			t.Errorf("%s: shape %v, want %v", c.name, g.Shape, c.dims)
		}
		closeTo(t, c.name, g.Data, c.want)
	}
}

// TestAttentionTopLatents checks top:K against the K largest entries of Hugging Face's decoder
// attention, and that only the maps asked for are written.
func TestAttentionTopLatents(t *testing.T) {
	ref := newReferenceMaps(t)
	order := make([]int, ref.latents)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return ref.decoder[order[a]] > ref.decoder[order[b]] })
	dir := t.TempDir()
	runOK(t, "attention", "--model", tinyDir, "--out", dir, "--raw", "--maps", "latents", "--latents", "top:3", tinyImage)
	raw := openRaw(t, filepath.Join(dir, "maps.safetensors"))
	want := itoa(order[0]) + "," + itoa(order[1]) + "," + itoa(order[2])
	if got := raw.Metadata["latents"]; got != want {
		t.Errorf("top:3 latents %q, want %q (decoder attention %v)", got, want, ref.decoder)
	}
	for _, name := range []string{"mean", "decoder", "rollout"} {
		if raw.Tensors[name] != nil {
			t.Errorf("%s written though --maps latents", name)
		}
		if _, err := os.Stat(filepath.Join(dir, name+".png")); !os.IsNotExist(err) {
			t.Errorf("%s.png written though --maps latents", name)
		}
	}
}

func decodePNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return img
}

// TestAttentionImages decodes the figures. input.png must be the preprocessed image, whose
// reference is Hugging Face's pixel_values undone (u = round(255·(x·std + mean))); decoder.png's
// cells must carry the viridis colour of the reference decoder map on its own range.
func TestAttentionImages(t *testing.T) {
	ref := newReferenceMaps(t)
	exp := expected(t)
	dir := t.TempDir()
	runOK(t, "attention", "--model", tinyDir, "--image", tinyImage, "--out", dir)
	const f = 14 // 16 columns enlarged to the 224-pixel display size
	in := decodePNG(t, filepath.Join(dir, "input.png"))
	if b := in.Bounds(); b.Dx() != f*ref.w || b.Dy() != f*ref.h {
		t.Fatalf("input.png is %v, want %d×%d", b, f*ref.w, f*ref.h)
	}
	mean := [3]float64{0.485, 0.456, 0.406}
	std := [3]float64{0.229, 0.224, 0.225}
	px := exp.Tensors["pixel_values"].Data
	n := ref.h * ref.w
	for y := range ref.h {
		for x := range ref.w {
			r, g, b, _ := in.At(x*f+f/2, y*f+f/2).RGBA()
			got := [3]uint32{r >> 8, g >> 8, b >> 8}
			for c := range 3 {
				want := math.Round(255 * (float64(px[c*n+y*ref.w+x])*std[c] + mean[c]))
				if float64(got[c]) != want {
					t.Fatalf("input.png (%d,%d) channel %d = %d, want %v", x, y, c, got[c], want)
				}
			}
		}
	}

	dec := decodePNG(t, filepath.Join(dir, "decoder.png"))
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range ref.dec {
		lo, hi = min(lo, v), max(hi, v)
	}
	// viz's montage puts a single tile 6 px from the left and under a 6 px margin and a 16 px title.
	const x0, y0 = 6, 22
	for y := range ref.h {
		for x := range ref.w {
			tv := (ref.dec[y*ref.w+x] - lo) / (hi - lo)
			r, g, b, _ := dec.At(x0+x*f+f/2, y0+y*f+f/2).RGBA()
			got := [3]uint8{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8)}
			// A value within the tolerance of a colour-table boundary may take the next entry.
			ok := false
			for _, dt := range []float64{0, -1.0 / 256, 1.0 / 256} {
				c := viz.Viridis(min(1, max(0, tv+dt)))
				ok = ok || got == [3]uint8{c.R, c.G, c.B}
			}
			if !ok {
				t.Fatalf("decoder.png cell (%d,%d) is %v, want viridis(%.4f) = %v", x, y, got, tv, viz.Viridis(tv))
			}
		}
	}
	lat := decodePNG(t, filepath.Join(dir, "latents.png"))
	if lat.Bounds().Dx() <= 3*f*ref.w || lat.Bounds().Dy() <= 3*f*ref.h {
		t.Errorf("latents.png is %v: the default top:8 montage should be 3 tiles wide and high", lat.Bounds())
	}
}

func TestAttentionOverlayAndVectorFormats(t *testing.T) {
	for _, c := range []struct{ format, magic string }{{"svg", "<svg"}, {"pdf", "%PDF-"}} {
		dir := t.TempDir()
		runOK(t, "attention", "--model", tinyDir, "--image", tinyImage, "--out", dir, "--overlay", "--alpha", "0.5", "--format", c.format, "--maps", "latents,decoder")
		for _, name := range []string{"latents", "decoder"} {
			data, err := os.ReadFile(filepath.Join(dir, name+"."+c.format))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(data[:min(len(data), 512)], []byte(c.magic)) {
				t.Errorf("%s.%s does not start as a %s file", name, c.format, c.format)
			}
		}
	}
}

// TestAttentionSeveralImages: each image gets its own folder; a bad file is skipped and reported.
func TestAttentionSeveralImages(t *testing.T) {
	tmp := t.TempDir()
	data, err := os.ReadFile(tinyImage)
	if err != nil {
		t.Fatal(err)
	}
	second := filepath.Join(tmp, "second.png")
	bad := filepath.Join(tmp, "bad.png")
	os.WriteFile(second, data, 0o644)
	os.WriteFile(bad, []byte("not an image"), 0o644)
	dir := filepath.Join(tmp, "out")
	_, errOut, code := run(t, "attention", "--model", tinyDir, "--out", dir, "--raw", "--maps", "mean", tinyImage, bad, second)
	if code != 1 || !strings.Contains(errOut, bad) || !strings.Contains(errOut, "1 of 3 images skipped") {
		t.Errorf("exit %d, stderr %q: want the bad file reported and exit 1", code, errOut)
	}
	a := openRaw(t, filepath.Join(dir, "chelsea", "maps.safetensors")).Tensors["mean"]
	b := openRaw(t, filepath.Join(dir, "second", "maps.safetensors")).Tensors["mean"]
	if a == nil || b == nil || !slices.Equal(a.Data, b.Data) {
		t.Errorf("the same image gave different mean maps in its two folders")
	}
	closeTo(t, "mean", a.Data, newReferenceMaps(t).mean)
}

func TestAttentionErrors(t *testing.T) {
	dir := t.TempDir()
	base := []string{"attention", "--model", tinyDir, "--out", dir}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--maps", "latents,heat"}, `unknown map "heat"`},
		{[]string{"--maps", ","}, "name at least one"},
		{[]string{"--format", "gif"}, `--format "gif"`},
		{[]string{"--latents", "3,8"}, "latent 8 out of range"},
		{[]string{"--latents", "top:9"}, "only 8 latents"},
		{[]string{"--latents", "top:0"}, "top:K"},
		{[]string{"--latents", "1,x"}, `"x" is not a latent index`},
		{[]string{"--latents", "1,0-2"}, "latent 1 listed twice"},
		{[]string{"--alpha", "1.5"}, "--alpha 1.5"},
		{[]string{"--clip", "0"}, "--clip 0"},
	} {
		args := append(append(append([]string(nil), base...), c.args...), tinyImage)
		_, errOut, code := run(t, args...)
		if code != 1 || !strings.Contains(errOut, c.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want exit 1 and one line with %q", c.args, code, errOut, c.want)
		}
	}
	for _, args := range [][]string{
		{"attention", "--model", tinyDir, "--out", dir},                        // no image
		{"attention", "--model", tinyDir, tinyImage},                           // no --out
		{"attention", "--random", "--model", tinyDir, "--out", dir, tinyImage}, // two models
	} {
		if _, _, code := run(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	_, errOut, code := run(t, "attention", "--model", tinyDir, "--out", dir, "a/x.png", "b/x.png")
	if code != 1 || !strings.Contains(errOut, "both write to") {
		t.Errorf("two images named x.png: exit %d, %q", code, errOut)
	}
}

// TestColourRange: the nearest-rank percentile of 1…100 (and NaN/Inf ignored), by hand.
func TestColourRange(t *testing.T) {
	m := []float32{float32(math.NaN()), float32(math.Inf(1))}
	for v := 100; v >= 1; v-- {
		m = append(m, float32(v))
	}
	for _, c := range []struct{ clip, hi float64 }{{100, 100}, {99.5, 100}, {99, 99}, {50, 50}, {0.5, 1}} {
		lo, hi := colourRange(m, c.clip)
		if lo != 1 || hi != c.hi {
			t.Errorf("clip %g: range %g..%g, want 1..%g", c.clip, lo, hi, c.hi)
		}
	}
}

// BenchmarkAttentionOutputs224 times what the command adds to the forward pass at full size
// (512 latents over 224² pixels, synthetic attention): the four maps' reductions are in package
// attention; here the eight-latent montage, three single maps with overlay, PNG encoding and the
// raw tensors.
func BenchmarkAttentionOutputs224(b *testing.B) {
	const L, h, w = 512, 224, 224
	n := h * w
	maps := &attentionMaps{H: h, W: w, Latents: L, Cross: make([]float32, L*n), Decoder: make([]float32, L),
		Mean: make([]float32, n), DecoderMap: make([]float32, n), Rollout: make([]float32, n), RolloutW: make([]float32, L)}
	for i := range maps.Cross {
		maps.Cross[i] = float32(i%977) / 977 / float32(n)
	}
	for l := range maps.Decoder {
		maps.Decoder[l] = float32(l%31) / 31 / L
	}
	for p := range n {
		maps.Mean[p], maps.DecoderMap[p], maps.Rollout[p] = maps.Cross[p], maps.Cross[n+p], maps.Cross[2*n+p]
	}
	img := &preprocess.RGB{W: w, H: h, Pix: make([]uint8, 3*n)}
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	opt := attentionOptions{maps: map[string]bool{"latents": true, "mean": true, "decoder": true, "rollout": true},
		latents: latentSpec{top: 8}, overlay: true, alpha: 0.6, raw: true, format: "png", clip: 99.5}
	dir := b.TempDir()
	for b.Loop() {
		if err := writeAttentionOutputs(io.Discard, dir, "x.png", img, maps, opt, map[string]string{}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestLatentSpecHugeRange: a range far past the model's latents is refused by its bounds, without
// listing its members first (`--latents 0-2000000000` exhausted memory; issue 19 item 14).
func TestLatentSpecHugeRange(t *testing.T) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	spec, err := parseLatentSpec("5,0-2000000")
	if err == nil {
		err = spec.check(8)
	}
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("err = %v, want out of range", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 4<<20 {
		t.Errorf("parsing and checking allocated %d bytes, want < 4 MiB", got)
	}
	_, errOut, code := run(t, "attention", "--model", tinyDir, "--out", t.TempDir(), "--latents", "0-2000000000", tinyImage)
	if code != 1 || !strings.Contains(errOut, "out of range") {
		t.Errorf("--latents 0-2000000000: exit %d, %q", code, errOut)
	}
}

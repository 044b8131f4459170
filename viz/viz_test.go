package viz_test

import (
	"bytes"
	"encoding/base64"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/perceiverkit/perceiver/core/weights"
	"github.com/perceiverkit/perceiver/viz"
)

var update = flag.Bool("update", false, "rewrite the golden images in testdata/viz")

// Colours of matplotlib's viridis (matplotlib.cm.viridis with its 256-entry table, ×255 and
// rounded): the ends are the published #440154 and #fde725, the middle #21918c.
func TestViridisMatchesMatplotlib(t *testing.T) {
	cases := []struct {
		t    float64
		want color.RGBA
	}{
		{0, color.RGBA{0x44, 0x01, 0x54, 255}},
		{0.5, color.RGBA{0x21, 0x91, 0x8c, 255}},
		{1, color.RGBA{0xfd, 0xe7, 0x25, 255}},
		{-3, color.RGBA{0x44, 0x01, 0x54, 255}}, // clamped
		{7, color.RGBA{0xfd, 0xe7, 0x25, 255}},
	}
	for _, c := range cases {
		if got := viz.Viridis(c.t); got != c.want {
			t.Errorf("Viridis(%v) = %v, want %v", c.t, got, c.want)
		}
	}
	// Perceptually ordered: luma (Rec. 601) strictly increases along the map in steps of 1/16.
	prev := -1.0
	for i := range 17 {
		c := viz.Viridis(float64(i) / 16)
		luma := 0.299*float64(c.R) + 0.587*float64(c.G) + 0.114*float64(c.B)
		if luma <= prev {
			t.Errorf("luma not increasing at t = %v: %v after %v", float64(i)/16, luma, prev)
		}
		prev = luma
	}
}

func TestRangeAndLimits(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	lo, hi := viz.Range([]float32{nan, 2, -1, inf, 0.5})
	if lo != -1 || hi != 2 {
		t.Errorf("Range = %v, %v; want -1, 2 (NaN and Inf skipped)", lo, hi)
	}
	if lo, hi := viz.Range([]float32{nan}); lo != 0 || hi != 0 {
		t.Errorf("Range(NaN) = %v, %v; want 0, 0", lo, hi)
	}
	if lo, hi := (viz.HeatmapOptions{Min: 0, Max: 10}).Limits([]float32{3}); lo != 0 || hi != 10 {
		t.Errorf("Limits with range = %v, %v; want 0, 10", lo, hi)
	}
}

// A 2×3 map drawn at 9×6: every cell is a 3×3 block; the minimum is Viridis(0), the maximum
// Viridis(1), the middle value Viridis(0.5), NaN NaNColor.
func TestHeatmapBlocks(t *testing.T) {
	m := []float32{
		1, 3, 5,
		float32(math.NaN()), 1, 5,
	}
	img := viz.Heatmap(m, 2, 3, viz.HeatmapOptions{Width: 9, Height: 6})
	if b := img.Bounds(); b.Dx() != 9 || b.Dy() != 6 {
		t.Fatalf("bounds %v, want 9×6", b)
	}
	want := []color.RGBA{
		viz.Viridis(0), viz.Viridis(0.5), viz.Viridis(1),
		viz.NaNColor, viz.Viridis(0), viz.Viridis(1),
	}
	for y := range 6 {
		for x := range 9 {
			if got := img.RGBAAt(x, y); got != want[(y/3)*3+x/3] {
				t.Fatalf("pixel (%d,%d) = %v, want %v", x, y, got, want[(y/3)*3+x/3])
			}
		}
	}
	// A given range overrides the map's: 3 is then the bottom of the scale.
	img = viz.Heatmap(m, 2, 3, viz.HeatmapOptions{Min: 3, Max: 5})
	if got := img.RGBAAt(0, 0); got != viz.Viridis(0) {
		t.Errorf("value below Min: %v, want Viridis(0)", got)
	}
	if got := img.RGBAAt(1, 0); got != viz.Viridis(0) {
		t.Errorf("value at Min: %v, want Viridis(0)", got)
	}
}

// Smooth interpolates values: between two cells of 0 and 1 drawn at 4 pixels, pixel centres
// sit at source x = -0.25, 0.25, 0.75, 1.25, so values 0 (clamped), 0.25, 0.75, 1.
func TestHeatmapSmooth(t *testing.T) {
	img := viz.Heatmap([]float32{0, 1}, 1, 2, viz.HeatmapOptions{Width: 4, Height: 1, Smooth: true})
	for x, v := range []float64{0, 0.25, 0.75, 1} {
		if got := img.RGBAAt(x, 0); got != viz.Viridis(v) {
			t.Errorf("pixel %d = %v, want Viridis(%v) = %v", x, got, v, viz.Viridis(v))
		}
	}
}

func TestOverlayBlend(t *testing.T) {
	base := image.NewRGBA(image.Rect(0, 0, 2, 1))
	base.SetRGBA(0, 0, color.RGBA{200, 100, 0, 255})
	base.SetRGBA(1, 0, color.RGBA{0, 50, 250, 255})
	m := []float32{0, 1}
	heat := []color.RGBA{viz.Viridis(0), viz.Viridis(1)}
	for _, alpha := range []float64{0, 0.25, 1} {
		got := viz.Overlay(base, m, 1, 2, alpha, viz.HeatmapOptions{})
		for x := range 2 {
			b, h, g := base.RGBAAt(x, 0), heat[x], got.RGBAAt(x, 0)
			mix := func(b, h uint8) float64 { return (1-alpha)*float64(b) + alpha*float64(h) }
			for _, ch := range [][3]float64{{float64(g.R), mix(b.R, h.R)}, {float64(g.G), mix(b.G, h.G)}, {float64(g.B), mix(b.B, h.B)}} {
				// 8-bit rounding of alpha and of the result: within 1 level.
				if math.Abs(ch[0]-ch[1]) > 1 {
					t.Errorf("alpha %v pixel %d: got %v, want about %v", alpha, x, g, ch[1])
				}
			}
			if g.A != 255 {
				t.Errorf("alpha %v pixel %d: A = %d, want opaque", alpha, x, g.A)
			}
		}
	}
}

func TestMontageLayout(t *testing.T) {
	red := viz.Heatmap([]float32{1}, 1, 1, viz.HeatmapOptions{Width: 10, Height: 20, Colormap: func(float64) color.RGBA { return color.RGBA{255, 0, 0, 255} }})
	blue := viz.Heatmap([]float32{1}, 1, 1, viz.HeatmapOptions{Width: 10, Height: 20, Colormap: func(float64) color.RGBA { return color.RGBA{0, 0, 255, 255} }})
	img := viz.Montage([]viz.Tile{{red, "a"}, {blue, "b"}, {red, "c"}}, 2)
	// 2 columns, 2 rows of cells 10 wide and 16+20 tall, 6 pixels of padding.
	if b := img.Bounds(); b.Dx() != 6+2*(10+6) || b.Dy() != 6+2*(36+6) {
		t.Fatalf("montage bounds %v", b)
	}
	checks := []struct {
		x, y int
		want color.RGBA
	}{
		{6, 6 + 16, color.RGBA{255, 0, 0, 255}},               // first tile, top left
		{6 + 16 + 9, 6 + 16 + 19, color.RGBA{0, 0, 255, 255}}, // second tile, bottom right
		{6 + 16, 6 + 42 + 16, color.RGBA{255, 255, 255, 255}}, // empty fourth cell
	}
	for _, c := range checks {
		if got := img.RGBAAt(c.x, c.y); got != c.want {
			t.Errorf("pixel (%d,%d) = %v, want %v", c.x, c.y, got, c.want)
		}
	}
}

// Golden images. The maps are the tiny fixture's (testdata/tiny/expected.safetensors, from Hugging
// Face's PerceiverForImageClassificationFourier on chelsea.png; see attention/maps_test.go),
// reduced here in float64; the base image is the fixture's pixel_values un-normalised: the 12×16
// centre crop of chelsea.png exactly as Hugging Face's processor fed it to that model. Images are
// compared pixel for pixel; run `go test ./viz -update` to rewrite them, and look at them.

const (
	tinyH, tinyW = 12, 16
	tinyL        = 8
	tinyScale    = 12 // display pixels per input position
)

type tinyFixture struct {
	cross   []float32 // [L, N]
	decoder []float32 // [L]
	pixels  []float32 // [3, H, W], normalised
}

func loadTiny(t testing.TB) tinyFixture {
	t.Helper()
	file, err := weights.OpenSafetensors("../testdata/tiny/expected.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	get := func(name string, shape ...int) []float32 {
		tv, err := file.Get(name, shape...)
		if err != nil {
			t.Fatal(err)
		}
		return append([]float32(nil), tv.Data...)
	}
	return tinyFixture{
		cross:   get("cross_attentions.encoder", 1, 1, tinyL, tinyH*tinyW),
		decoder: get("cross_attentions.decoder", 1, 1, 1, tinyL),
		pixels:  get("pixel_values", 1, 3, tinyH, tinyW),
	}
}

// baseImage un-normalises pixel_values with the ImageNet mean and std of the fixture's
// preprocessor_config.json and enlarges each pixel to a tinyScale block.
func (f tinyFixture) baseImage() *image.RGBA {
	mean := [3]float64{0.485, 0.456, 0.406}
	std := [3]float64{0.229, 0.224, 0.225}
	img := image.NewRGBA(image.Rect(0, 0, tinyW*tinyScale, tinyH*tinyScale))
	for y := range img.Rect.Dy() {
		for x := range img.Rect.Dx() {
			var c [3]uint8
			for ch := range 3 {
				v := float64(f.pixels[(ch*tinyH+y/tinyScale)*tinyW+x/tinyScale])*std[ch] + mean[ch]
				c[ch] = uint8(math.Round(255 * max(0, min(1, v))))
			}
			img.SetRGBA(x, y, color.RGBA{c[0], c[1], c[2], 255})
		}
	}
	return img
}

func (f tinyFixture) weighted(w []float64) []float32 {
	n := tinyH * tinyW
	out := make([]float32, n)
	for p := range n {
		var s float64
		for l := range tinyL {
			s += w[l] * float64(f.cross[l*n+p])
		}
		out[p] = float32(s)
	}
	return out
}

func checkGolden(t *testing.T, name string, img image.Image) {
	t.Helper()
	path := filepath.Join("..", "testdata", "viz", name)
	if *update {
		if err := viz.SavePNG(path, img); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", path)
		return
	}
	file, err := os.Open(path)
	if err != nil {
		t.Fatalf("%v (run go test ./viz -update to create it)", err)
	}
	defer file.Close()
	want, err := png.Decode(file)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if want.Bounds() != img.Bounds() {
		t.Fatalf("%s: bounds %v, golden %v", name, img.Bounds(), want.Bounds())
	}
	diff := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if color.RGBAModel.Convert(img.At(x, y)) != color.RGBAModel.Convert(want.At(x, y)) {
				diff++
			}
		}
	}
	if diff > 0 {
		t.Errorf("%s: %d pixels differ from the golden image", name, diff)
	}
}

func TestGoldenMeanHeatmap(t *testing.T) {
	f := loadTiny(t)
	w := make([]float64, tinyL)
	for l := range w {
		w[l] = 1.0 / tinyL
	}
	m := f.weighted(w)
	lo, hi := viz.Range(m)
	img := viz.Heatmap(m, tinyH, tinyW, viz.HeatmapOptions{Width: tinyW * tinyScale, Height: tinyH * tinyScale})
	checkGolden(t, "tiny_mean_heatmap.png", viz.WithColorbar(img, lo, hi, nil))
}

func TestGoldenDecoderOverlay(t *testing.T) {
	f := loadTiny(t)
	w := make([]float64, tinyL)
	for l := range w {
		w[l] = float64(f.decoder[l])
	}
	m := f.weighted(w)
	base := f.baseImage()
	checkGolden(t, "tiny_base.png", base)
	checkGolden(t, "tiny_decoder_overlay.png", viz.Overlay(base, m, tinyH, tinyW, 0.6, viz.HeatmapOptions{}))
}

// The montage of `probe attention --latents top:4 --overlay`: the four latents the decoder reads
// most, each over the image, with their decoder weight in the title, on one shared scale.
func TestGoldenLatentMontage(t *testing.T) {
	f := loadTiny(t)
	order := make([]int, tinyL)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case f.decoder[a] > f.decoder[b]:
			return -1
		case f.decoder[a] < f.decoder[b]:
			return 1
		}
		return 0
	})
	n := tinyH * tinyW
	lo, hi := viz.Range(f.cross[:0])
	for _, l := range order[:4] {
		l0, h0 := viz.Range(f.cross[l*n : (l+1)*n])
		if lo == hi {
			lo, hi = l0, h0
		}
		lo, hi = min(lo, l0), max(hi, h0)
	}
	base := f.baseImage()
	var tiles []viz.Tile
	for _, l := range order[:4] {
		opt := viz.HeatmapOptions{Min: lo, Max: hi}
		tiles = append(tiles, viz.Tile{
			Image: viz.Overlay(base, f.cross[l*n:(l+1)*n], tinyH, tinyW, 0.7, opt),
			Title: fmt.Sprintf("latent %d  d=%.3f", l, f.decoder[l]),
		})
	}
	fig := viz.Figure{Tiles: tiles, Cols: 2, Scale: &viz.Scale{Min: lo, Max: hi}}
	checkGolden(t, "tiny_top4_montage.png", fig.Image())
}

func TestSaveFigureFormats(t *testing.T) {
	f := loadTiny(t)
	n := tinyH * tinyW
	fig := viz.Figure{Scale: &viz.Scale{Min: 0, Max: 1}}
	for l := range 3 {
		fig.Tiles = append(fig.Tiles, viz.Tile{
			Image: viz.Heatmap(f.cross[l*n:(l+1)*n], tinyH, tinyW, viz.HeatmapOptions{Min: 0, Max: 1}),
			Title: fmt.Sprintf("latent %d", l),
		})
	}
	dir := t.TempDir()
	for _, ext := range []string{"png", "svg", "pdf"} {
		path := filepath.Join(dir, "fig."+ext)
		if err := viz.SaveFigure(path, fig); err != nil {
			t.Fatalf("SaveFigure(%s): %v", path, err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		switch ext {
		case "png":
			img, err := png.Decode(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if img.Bounds() != fig.Image().Bounds() {
				t.Errorf("png bounds %v, want %v", img.Bounds(), fig.Image().Bounds())
			}
		case "svg":
			s := string(data)
			// Three embedded maps and the colour bar's image, the titles as text.
			if !strings.Contains(s, "<svg") || strings.Count(s, "<image") != 4 || !strings.Contains(s, "latent 2") {
				t.Errorf("svg lacks its parts: %d images, %d bytes", strings.Count(s, "<image"), len(s))
			}
			// The first embedded image is latent 0's map, upright, each cell enlarged to a block.
			const prefix = `xlink:href="data:image/png;base64,`
			i := strings.Index(s, prefix)
			if i < 0 {
				t.Fatal("svg: no embedded PNG")
			}
			enc := s[i+len(prefix):]
			enc = enc[:strings.IndexByte(enc, '"')]
			raw, err := base64.StdEncoding.DecodeString(enc)
			if err != nil {
				t.Fatal(err)
			}
			emb, err := png.Decode(bytes.NewReader(raw))
			if err != nil {
				t.Fatalf("svg embedded image: %v", err)
			}
			k := emb.Bounds().Dx() / tinyW
			tile := fig.Tiles[0].Image
			for _, p := range []image.Point{{0, 0}, {tinyW - 1, 0}, {3, tinyH - 1}, {7, 5}} {
				got := color.RGBAModel.Convert(emb.At(p.X*k+k/2, p.Y*k+k/2))
				if want := color.RGBAModel.Convert(tile.At(p.X, p.Y)); got != want {
					t.Errorf("svg embedded cell %v = %v, want %v", p, got, want)
				}
			}
		case "pdf":
			if !bytes.HasPrefix(data, []byte("%PDF-")) || !bytes.Contains(data, []byte("/Image")) {
				t.Errorf("pdf lacks its header or images (%d bytes)", len(data))
			}
		}
	}
	err := viz.SaveFigure(filepath.Join(dir, "fig.bmp"), fig)
	if err == nil || !strings.Contains(err.Error(), "fig.bmp") {
		t.Errorf("unknown extension: err = %v, want one naming the file", err)
	}
	if err := viz.SaveFigure(filepath.Join(dir, "missing", "fig.png"), fig); err == nil {
		t.Error("unwritable path: no error")
	}
}

func benchMap224() []float32 {
	m := make([]float32, 224*224)
	for i := range m {
		y, x := i/224, i%224
		m[i] = float32(math.Exp(-float64((y-90)*(y-90)+(x-130)*(x-130)) / 800))
	}
	return m
}

// The `probe attention --overlay` path for one map: colour it and blend it over the 224×224
// image, into reused buffers.
func BenchmarkHeatmapOverlay224(b *testing.B) {
	m := benchMap224()
	base := image.NewRGBA(image.Rect(0, 0, 224, 224))
	for i := range base.Pix {
		base.Pix[i] = uint8(i * 7)
	}
	heat := image.NewRGBA(base.Rect)
	dst := image.NewRGBA(base.Rect)
	b.ReportAllocs()
	for b.Loop() {
		viz.DrawHeatmap(heat, m, 224, 224, viz.HeatmapOptions{})
		viz.DrawOverlay(dst, base, m, 224, 224, 0.6, viz.HeatmapOptions{})
	}
}

func BenchmarkHeatmapSmooth224From12(b *testing.B) {
	m := make([]float32, 12*16)
	for i := range m {
		m[i] = float32(i)
	}
	dst := image.NewRGBA(image.Rect(0, 0, 224, 224))
	b.ReportAllocs()
	for b.Loop() {
		viz.DrawHeatmap(dst, m, 12, 16, viz.HeatmapOptions{Smooth: true})
	}
}

func TestDiverging(t *testing.T) {
	// The ends and the centre are RdBu's outer and middle colours; t outside [0, 1] clamps.
	cases := map[float64]color.RGBA{0: {5, 113, 176, 255}, 0.5: {247, 247, 247, 255}, 1: {202, 0, 32, 255}, -3: {5, 113, 176, 255}, 7: {202, 0, 32, 255}}
	for tv, want := range cases {
		if got := viz.Diverging(tv); got != want {
			t.Errorf("viz.Diverging(%g) = %v, want %v", tv, got, want)
		}
	}
	// Halfway between the first two anchors.
	if got, want := viz.Diverging(0.125), (color.RGBA{76, 155, 199, 255}); got != want {
		t.Errorf("viz.Diverging(0.125) = %v, want %v", got, want)
	}
	if lo, hi := viz.SymmetricRange([]float32{-0.5, 2, float32(math.NaN())}); lo != -2 || hi != 2 {
		t.Errorf("SymmetricRange = %g, %g, want -2, 2", lo, hi)
	}
	if lo, hi := viz.SymmetricRange([]float32{0, 0}); lo != -1 || hi != 1 {
		t.Errorf("SymmetricRange of zeros = %g, %g, want -1, 1", lo, hi)
	}
}

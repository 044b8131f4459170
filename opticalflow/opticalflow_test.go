package opticalflow

import (
	"bytes"
	"encoding/binary"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/perceiverkit/perceiver/core"
)

// The tiny flow model of ../testdata/tiny-flow (training size 12×16; see core's flow tests for its
// parity with Hugging Face).
const tinyFlow = "../testdata/tiny-flow"

func loadTiny(t testing.TB) *core.Model {
	t.Helper()
	m, err := core.Load(tinyFlow)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// testFrames is a deterministic pair of h×w frames in [−1, 1]: a pattern and the same pattern
// moved right by two pixels.
func testFrames(h, w int) []float32 {
	f := make([]float32, 6*h*w)
	for t := 0; t < 2; t++ {
		for c := 0; c < 3; c++ {
			for y := 0; y < h; y++ {
				for x := 0; x < w; x++ {
					xs := float64(x - 2*t)
					f[((t*3+c)*h+y)*w+x] = float32(math.Sin(0.37*xs+0.23*float64(y)+float64(c)) * math.Cos(0.11*xs*float64(c+1)))
				}
			}
		}
	}
	return f
}

func TestFloRoundTrip(t *testing.T) {
	f := &Field{H: 3, W: 4, UV: make([]float32, 24)}
	for i := range f.UV {
		f.UV[i] = float32(i)*0.25 - 2
	}
	path := filepath.Join(t.TempDir(), "a.flo")
	if err := SaveFlo(path, f); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Middlebury's layout, byte for byte: "PIEH", width, height, then u, v interleaved.
	if string(data[:4]) != "PIEH" || binary.LittleEndian.Uint32(data[4:]) != 4 || binary.LittleEndian.Uint32(data[8:]) != 3 || len(data) != 12+24*4 {
		t.Fatalf("header % x, %d bytes", data[:12], len(data))
	}
	if u := math.Float32frombits(binary.LittleEndian.Uint32(data[12+4*2*(1*4+2):])); u != f.UV[2*(1*4+2)] {
		t.Errorf("u at (1, 2) is stored as %v, want %v", u, f.UV[2*(1*4+2)])
	}
	g, err := LoadFlo(path)
	if err != nil {
		t.Fatal(err)
	}
	if g.H != 3 || g.W != 4 || !slices.Equal(g.UV, f.UV) {
		t.Errorf("read back %d×%d %v", g.H, g.W, g.UV)
	}
	for name, bad := range map[string][]byte{
		"not flo":   []byte("PNG\x00\x01\x00\x00\x00\x01\x00\x00\x00"),
		"truncated": data[:len(data)-3],
		"empty":     nil,
	} {
		if _, err := ReadFlo(bytes.NewReader(bad)); err == nil {
			t.Errorf("%s: ReadFlo succeeded", name)
		}
	}
}

// TestWheel checks the colour wheel against the published definition (Baker et al. 2011): 55 hues,
// pure red at angle 0 of the wheel (flow pointing left, u < 0), the ramps' ends at the primaries and
// secondaries, white at zero flow, and out-of-range flow darkened.
func TestWheel(t *testing.T) {
	if len(wheel) != WheelSize {
		t.Fatalf("%d hues, want 55", len(wheel))
	}
	starts := map[int][3]float64{0: {255, 0, 0}, 15: {255, 255, 0}, 21: {0, 255, 0}, 25: {0, 255, 255}, 36: {0, 0, 255}, 49: {255, 0, 255}}
	for i, want := range starts {
		if wheel[i] != want {
			t.Errorf("hue %d is %v, want %v", i, wheel[i], want)
		}
	}
	if wheel[1] != [3]float64{255, 17, 0} || wheel[54] != [3]float64{255, 0, 43} {
		t.Errorf("hues 1 and 54 are %v and %v, want [255 17 0] and [255 0 43]", wheel[1], wheel[54])
	}
	// Exact expectations, derived by hand from the definition.
	if c := Color(0, 0); c != (color.RGBA{255, 255, 255, 255}) {
		t.Errorf("zero flow: %v, want white", c)
	}
	// u = 1, v = 0: a = atan2(−0, −1)/π = −1 → fk = 0 → hue 0, red.
	if c := Color(1, 0); c != (color.RGBA{255, 0, 0, 255}) {
		t.Errorf("flow (1, 0): %v, want red", c)
	}
	// u = −1, v = 0: a = 0 → fk = 27 → hue 27: cyan → blue ramp step 2, (0, 255−floor(510/11), 255).
	if c := Color(-1, 0); c != (color.RGBA{0, 209, 255, 255}) {
		t.Errorf("flow (−1, 0): %v, want (0, 209, 255)", c)
	}
	// u = 0, v = −1 (up): a = atan2(1, 0)/π = 0.5 → fk = 40.5 → halfway between hues 40 and 41 of
	// blue → magenta: r = (floor(255·4/13) + floor(255·5/13))/2 = (78 + 98)/2 = 88.
	if c := Color(0, -1); c != (color.RGBA{88, 0, 255, 255}) {
		t.Errorf("flow (0, −1): %v, want (88, 0, 255)", c)
	}
	// Half length: halfway to white. Out of range: darkened by a quarter.
	if c := Color(0.5, 0); c != (color.RGBA{255, 127, 127, 255}) {
		t.Errorf("flow (0.5, 0): %v, want (255, 127, 127)", c)
	}
	if c := Color(2, 0); c != (color.RGBA{191, 0, 0, 255}) {
		t.Errorf("flow (2, 0): %v, want (191, 0, 0)", c)
	}
	if c := Color(math.NaN(), 0); c != (color.RGBA{0, 0, 0, 255}) {
		t.Errorf("NaN flow: %v, want black", c)
	}
}

func TestTileOrigins(t *testing.T) {
	// DeepMind's colab at 436×1024 (Sintel) with 368×496 tiles: rows 0 and 68, columns 0, 476, 528.
	got, err := TileOrigins(436, 1024, [2]int{368, 496}, MinOverlap)
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]int{{0, 0}, {0, 476}, {0, 528}, {68, 0}, {68, 476}, {68, 528}}
	if !slices.Equal(got, want) {
		t.Errorf("origins %v, want %v", got, want)
	}
	if got, _ := TileOrigins(368, 496, [2]int{368, 496}, MinOverlap); !slices.Equal(got, [][2]int{{0, 0}}) {
		t.Errorf("training size: origins %v, want one tile", got)
	}
	if _, err := TileOrigins(300, 600, [2]int{368, 496}, MinOverlap); err == nil || !strings.Contains(err.Error(), "smaller than the model's 368×496") {
		t.Errorf("small frames: error %v", err)
	}
	if _, err := TileOrigins(30, 40, [2]int{12, 16}, MinOverlap); err == nil || !strings.Contains(err.Error(), "overlap 20") {
		t.Errorf("overlap larger than the tile: error %v", err)
	}
}

// TestTiledMatchesBruteForce runs the tiny model on 30×40 frames (its training size is 12×16) and
// compares every pixel with the blend computed here directly from the definition: the tiles at the
// origins worked out by hand, each run through the model on its own crop, weighted by the pixel's
// distance to the tile border (1 at the border). Tolerance 1e-6 of the largest flow value: the
// same float32 products, summed in another order.
func TestTiledMatchesBruteForce(t *testing.T) {
	m := loadTiny(t)
	const h, w, overlap = 30, 40, 4
	frames := testFrames(h, w)
	var calls int
	got, err := Compute(m, frames, h, w, overlap, func(done, total int) { calls++ })
	if err != nil {
		t.Fatal(err)
	}
	// Rows every 12−4 = 8 pixels: 0, 8, 16, then 24 moved back to 30−12 = 18. Columns every 12:
	// 0, 12, 24, then 36 moved back to 24, which DeepMind's rule runs twice and we once (a
	// repeated tile leaves the weighted mean as it is).
	ys, xs := []int{0, 8, 16, 18}, []int{0, 12, 24}
	if calls != len(ys)*len(xs) {
		t.Errorf("%d tiles run, want %d", calls, len(ys)*len(xs))
	}
	sum := make([]float64, 2*h*w)
	wsum := make([]float64, h*w)
	for _, y0 := range ys {
		for _, x0 := range xs {
			tile := make([]float32, 6*12*16)
			for c := 0; c < 6; c++ {
				for y := 0; y < 12; y++ {
					for x := 0; x < 16; x++ {
						tile[(c*12+y)*16+x] = frames[(c*h+y0+y)*w+x0+x]
					}
				}
			}
			out, err := m.ForwardFrames(tile, 1, 12, 16, core.Trace{})
			if err != nil {
				t.Fatal(err)
			}
			for y := 0; y < 12; y++ {
				for x := 0; x < 16; x++ {
					wt := float64(min(y+1, 12-y, x+1, 16-x))
					p := (y0+y)*w + x0 + x
					sum[2*p] += wt * float64(out.Flow[2*(y*16+x)])
					sum[2*p+1] += wt * float64(out.Flow[2*(y*16+x)+1])
					wsum[p] += wt
				}
			}
		}
	}
	want := make([]float32, 2*h*w)
	var worst, big float64
	for i := range want {
		want[i] = float32(sum[i] / wsum[i/2])
		worst = max(worst, math.Abs(float64(got[i]-want[i])))
		big = max(big, math.Abs(float64(want[i])))
	}
	if worst > 1e-6*big {
		t.Errorf("tiled flow differs from the brute-force blend by %.3g (largest value %.3g)", worst, big)
	}
	// A frame of the training size is one tile: the model's output itself.
	one := Crop(frames, h, w, [2]int{3, 5}, [2]int{12, 16})
	direct, err := m.ForwardFrames(one, 1, 12, 16, core.Trace{})
	if err != nil {
		t.Fatal(err)
	}
	single, err := Compute(m, one, 12, 16, overlap, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(single, direct.Flow) {
		t.Error("one tile: flow differs from the model's output")
	}
	if _, err := Compute(m, frames[:6*10*40], 10, 40, overlap, nil); err == nil || !strings.Contains(err.Error(), "smaller") {
		t.Errorf("frames smaller than the training size: error %v", err)
	}
}

func TestPicture(t *testing.T) {
	f := &Field{H: 20, W: 30, UV: make([]float32, 2*20*30)}
	for y := 0; y < 20; y++ {
		for x := 0; x < 30; x++ {
			f.UV[2*(y*30+x)] = float32(x - 15)
			f.UV[2*(y*30+x)+1] = float32(y - 10)
		}
	}
	img := Image(f, 0)
	// The largest length (the corner (−15, −10)) is fully saturated; the centre is white.
	if c := img.RGBAAt(15, 10); c != (color.RGBA{255, 255, 255, 255}) {
		t.Errorf("zero flow drawn %v", c)
	}
	if c, want := img.RGBAAt(0, 0), Color(-1*15/math.Hypot(15, 10), -1*10/math.Hypot(15, 10)); c != want {
		t.Errorf("corner drawn %v, want %v", c, want)
	}
	pic := Picture(f, 0, "test")
	if b := pic.Bounds(); b.Dx() <= 320+120 || b.Dy() <= 120 {
		t.Errorf("picture of %v leaves no room for the wheel", b)
	}
}

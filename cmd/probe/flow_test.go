package main

import (
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/core/preprocess"
	"github.com/perceiverkit/perceiver/core/weights"
	"github.com/perceiverkit/perceiver/opticalflow"
)

// The tiny optical flow model and Hugging Face's outputs on its frame pair
// (../../testdata/tiny-flow, a copy of ../shared/fixtures/tiny-flow). Tolerance: 1e-4 of the
// largest reference value, the parity bar of core's tests.
const tinyFlowDir = "../../testdata/tiny-flow"

func flowExpected(t *testing.T) *weights.File {
	t.Helper()
	f, err := weights.OpenSafetensors(filepath.Join(tinyFlowDir, "expected.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func flowClose(t *testing.T, name string, got, want []float32, scale float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", name, len(got), len(want))
	}
	var diff, big float64
	for i := range want {
		diff = max(diff, math.Abs(float64(got[i]-scale*want[i])))
		big = max(big, math.Abs(float64(scale*want[i])))
	}
	if diff > 1e-4*big {
		t.Errorf("%s: differs by %.3g (largest %.3g)", name, diff, big)
	}
}

func TestFlowWritesFloAndPicture(t *testing.T) {
	exp := flowExpected(t)
	out := t.TempDir()
	f1, f2 := filepath.Join(tinyFlowDir, "frame1.png"), filepath.Join(tinyFlowDir, "frame2.png")
	stdout, stderr, code := run(t, "flow", "--model", tinyFlowDir, "--frame1", f1, "--frame2", f2, "--out", out, "--raw", "--query", "5,7", "--query", "0,15")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "flow.flo") {
		t.Errorf("stdout %q does not list flow.flo", stdout)
	}
	ref := exp.Tensors["flow"].Data
	// The .flo file holds pixels: 20 × Hugging Face's output.
	fl, err := opticalflow.LoadFlo(filepath.Join(out, "flow.flo"))
	if err != nil {
		t.Fatal(err)
	}
	if fl.H != 12 || fl.W != 16 {
		t.Fatalf(".flo is %d×%d, want 12×16", fl.H, fl.W)
	}
	flowClose(t, "flow.flo", fl.UV, ref, core.FlowScale)
	raw, err := weights.OpenSafetensors(filepath.Join(out, "flow.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	flowClose(t, "raw flow", raw.Tensors["flow"].Data, ref, 1)
	for _, name := range []string{"flow.png", "query_5_7.png", "query_0_15.png"} {
		f, err := os.Open(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if b := img.Bounds(); b.Dx() < 16 || b.Dy() < 12 {
			t.Errorf("%s is %v", name, b)
		}
	}
}

// writeFrame saves an h×w PNG of a pattern shifted by dx pixels.
func writeFrame(t *testing.T, path string, h, w, dx int) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			v := func(c int) uint8 { return uint8(128 + 100*math.Sin(0.4*float64(x-dx)+0.3*float64(y)+float64(c))) }
			img.Set(x, y, color.RGBA{v(0), v(1), v(2), 255})
		}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
}

// TestFlowFramesDir runs every consecutive pair of a folder of 30×40 frames (tiled: the model's
// training size is 12×16) and checks each .flo against opticalflow.Compute on the same frames.
func TestFlowFramesDir(t *testing.T) {
	dir, out := t.TempDir(), t.TempDir()
	for i, name := range []string{"a.png", "b.png", "c.png"} {
		writeFrame(t, filepath.Join(dir, name), 30, 40, 2*i)
	}
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not a frame"), 0o644)
	_, stderr, code := run(t, "flow", "--model", tinyFlowDir, "--frames-dir", dir, "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	m, err := core.Load(tinyFlowDir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, pair := range [][2]string{{"a", "b"}, {"b", "c"}} {
		var imgs [2]*preprocess.RGB
		for i, n := range pair {
			if imgs[i], err = preprocess.DecodeFile(filepath.Join(dir, n+".png"), preprocess.Options{}); err != nil {
				t.Fatal(err)
			}
		}
		frames, _ := preprocess.FlowFrames(imgs[0], imgs[1])
		want, err := opticalflow.Compute(m, frames, 30, 40, 4, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := opticalflow.LoadFlo(filepath.Join(out, pair[0]+".flo"))
		if err != nil {
			t.Fatal(err)
		}
		flowClose(t, pair[0]+".flo", got.UV, want, core.FlowScale)
		if _, err := os.Stat(filepath.Join(out, pair[0]+".png")); err != nil {
			t.Error(err)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "c.flo")); err == nil {
		t.Error("the last frame has no successor, yet c.flo was written")
	}
}

func TestFlowErrors(t *testing.T) {
	dir := t.TempDir()
	f1 := filepath.Join(tinyFlowDir, "frame1.png")
	small, big := filepath.Join(dir, "small.png"), filepath.Join(dir, "big.png")
	writeFrame(t, small, 10, 40, 0)
	writeFrame(t, big, 30, 40, 0)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"sizes differ", []string{"--model", tinyFlowDir, "--frame1", f1, "--frame2", big}, "frames differ in size"},
		{"too small", []string{"--model", tinyFlowDir, "--frame1", small, "--frame2", small}, "smaller than the model's 12×16"},
		{"classifier", []string{"--model", tinyDir, "--frame1", f1, "--frame2", f1}, "not an optical flow model"},
		{"query outside", []string{"--model", tinyFlowDir, "--frame1", f1, "--frame2", f1, "--query", "12,0"}, "outside the 12×16 frames"},
		{"query with a folder", []string{"--model", tinyFlowDir, "--frames-dir", dir, "--query", "1,1"}, "--query needs --frame1"},
		{"missing frame", []string{"--model", tinyFlowDir, "--frame1", f1, "--frame2", filepath.Join(dir, "none.png")}, "none.png"},
		{"negative overlap", []string{"--model", tinyFlowDir, "--frame1", f1, "--frame2", f1, "--overlap", "-2"}, "--overlap -2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, stderr, code := run(t, append([]string{"flow", "--out", t.TempDir()}, c.args...)...)
			if code != 1 || !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
				t.Errorf("exit %d, stderr %q: want one line mentioning %q", code, stderr, c.want)
			}
		})
	}
	if _, _, code := run(t, "flow", "--model", tinyFlowDir, "--frame1", f1, "--out", dir); code != 2 {
		t.Errorf("one frame only: exit %d, want 2 (usage)", code)
	}
}

// TestDumpFrames checks probe dump --frames against Hugging Face's tensors on the same pair.
func TestDumpFrames(t *testing.T) {
	exp := flowExpected(t)
	path := filepath.Join(t.TempDir(), "dump.safetensors")
	frames := filepath.Join(tinyFlowDir, "frame1.png") + "," + filepath.Join(tinyFlowDir, "frame2.png")
	if _, stderr, code := run(t, "dump", "--model", tinyFlowDir, "--frames", frames, "--out", path); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	got, err := weights.OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	for name, ref := range exp.Tensors {
		g, ok := got.Tensors[name]
		if !ok {
			t.Errorf("dump has no %s", name)
			continue
		}
		if !slices.Equal(g.Shape, ref.Shape) {
			t.Errorf("%s: shape %v, want %v", name, g.Shape, ref.Shape)
			continue
		}
		flowClose(t, name, g.Data, ref.Data, 1)
	}
	if _, stderr, code := run(t, "dump", "--model", tinyFlowDir, "--frames", "only-one.png", "--out", path); code != 1 || !strings.Contains(stderr, "two image paths") {
		t.Errorf("one frame: exit %d, %q", code, stderr)
	}
	if _, stderr, code := run(t, "dump", "--model", tinyFlowDir, "--frames", frames, "--grads", "--out", path); code != 1 || !strings.Contains(stderr, "--grads") {
		t.Errorf("--frames with --grads: exit %d, %q", code, stderr)
	}
}

func TestBenchFlow(t *testing.T) {
	stdout, stderr, code := run(t, "bench", "--model", tinyFlowDir, "--runs", "1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "12×16") || !strings.Contains(stdout, "flow input stage") {
		t.Errorf("bench output does not describe the flow model at its training size:\n%s", stdout)
	}
}

package main

import (
	"fmt"
	"io"
	"strconv"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/core/weights"
)

func init() {
	register("dump", "write every internal tensor of a forward pass to safetensors", runDump)
}

func runDump(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dump", "usage: probe dump --model DIR (--image PATH | --pixels FILE | --frames A,B) --out FILE.safetensors", stderr)
	var mf modelFlags
	mf.register(fs)
	image := fs.String("image", "", "image file to run")
	pixels := fs.String("pixels", "", "safetensors file holding pixel_values [B,3,H,W] (instead of --image)")
	out := fs.String("out", "", "output .safetensors file")
	frames := fs.String("frames", "", "A,B: two frames for the optical flow model (instead of --image); writes patches, inputs, … flow")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if *frames != "" && *image == "" && *pixels == "" && fs.NArg() == 0 && *out != "" {
		return dumpFrames(&mf, *frames, *out, stdout, stderr)
	}
	if fs.NArg() > 0 || *out == "" || (*image == "") == (*pixels == "") || *frames != "" {
		fs.Usage()
		return errUsage
	}
	m, err := mf.open(stderr)
	if err != nil {
		return err
	}
	defer m.Close()

	var px *weights.Tensor
	source := *image
	if *image != "" {
		img, err := m.Preprocessor.LoadImage(*image, mf.decodeOptions())
		if err != nil {
			return err
		}
		px = &weights.Tensor{Name: "pixel_values", DType: "F32", Shape: []int{1, 3, img.H, img.W}, Data: img.Pixels}
	} else {
		source = *pixels
		f, err := weights.OpenSafetensors(*pixels)
		if err != nil {
			return err
		}
		defer f.Close()
		t, ok := f.Tensors["pixel_values"]
		if !ok {
			return fmt.Errorf("%s: no tensor pixel_values", *pixels)
		}
		if len(t.Shape) != 4 || t.Shape[1] != 3 {
			return fmt.Errorf("%s: tensor pixel_values is %v, want [B,3,H,W]", *pixels, t.Shape)
		}
		px = t
	}
	res, err := m.Forward(px.Data, px.Shape[0], px.Shape[2], px.Shape[3], core.TraceAll)
	if err != nil {
		return err
	}
	tensors := append([]*weights.Tensor{px}, res.Tensors()...)
	for _, t := range tensors {
		if err := checkFinite(t.Name, t.Data); err != nil {
			return fmt.Errorf("%s: model %s: %w; nothing written", source, mf.model, err)
		}
	}
	g := res.Grid
	meta := map[string]string{
		"producer":    "perceiverkit probe dump",
		"model":       mf.model,
		"source":      source,
		"input_stage": m.Weights.Input.Kind(),
		"grid":        g.String(),
		"grid_rows":   strconv.Itoa(g.Rows), "grid_cols": strconv.Itoa(g.Cols),
		"grid_stride": strconv.Itoa(g.Stride), "grid_offset": strconv.Itoa(g.Offset),
	}
	if err := weights.WriteSafetensors(*out, tensors, meta); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %d tensors to %s\n", len(tensors), *out)
	return nil
}

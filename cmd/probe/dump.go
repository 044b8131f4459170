package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/core/weights"
)

func init() {
	register("dump", "write every internal tensor of a forward pass to safetensors", runDump)
}

func runDump(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dump", "usage: probe dump --model DIR (--image PATH | --pixels FILE | --frames A,B) --out FILE.safetensors [--grads [--target K]]", stderr)
	var mf modelFlags
	mf.register(fs)
	image := fs.String("image", "", "image file to run")
	pixels := fs.String("pixels", "", "safetensors file holding pixel_values [B,3,H,W] (instead of --image)")
	out := fs.String("out", "", "output .safetensors file")
	frames := fs.String("frames", "", "A,B: two frames for the optical flow model (instead of --image); writes patches, inputs, … flow")
	grads := fs.Bool("grads", false, "also write the gradients of the target logit (grad.pixel_values, grad.attentions.{j}, grad.cross_attentions.*, grad.hidden_states.{i}), by the backward pass")
	target := targetVar(fs, "with --grads: the class whose logit is differentiated, for every image (top1: each image's own prediction)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if err := target.check(); err != nil {
		return err
	}
	if *frames != "" && *image == "" && *pixels == "" && fs.NArg() == 0 && *out != "" {
		if *grads {
			return fmt.Errorf("--grads: the backward pass is the image classifiers', not the flow model's (--frames)")
		}
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
	B := px.Shape[0]
	var res *core.Output
	var g *core.Gradients
	if *grads {
		gt := core.GradTrace{Pixels: true, HiddenStates: true, SelfAttentions: true, EncoderAttention: true, DecoderAttention: true}
		if !target.top1() {
			k, err := target.resolve(m.Config.Labels(), nil)
			if err != nil {
				return err
			}
			gt.Targets = slices.Repeat([]int{k}, B)
		}
		res, g, err = m.ForwardBackward(px.Data, B, px.Shape[2], px.Shape[3], core.TraceAll, gt)
	} else {
		res, err = m.Forward(px.Data, B, px.Shape[2], px.Shape[3], core.TraceAll)
	}
	if err != nil {
		return err
	}
	tensors := append([]*weights.Tensor{px}, res.Tensors()...)
	grid := res.Grid
	meta := map[string]string{
		"producer":    "perceiverkit probe dump",
		"model":       mf.model,
		"source":      source,
		"input_stage": m.Weights.Input.Kind(),
		"grid":        grid.String(),
		"grid_rows":   strconv.Itoa(grid.Rows), "grid_cols": strconv.Itoa(grid.Cols),
		"grid_stride": strconv.Itoa(grid.Stride), "grid_offset": strconv.Itoa(grid.Offset),
	}
	if g != nil {
		tensors = append(tensors, g.Tensors(res)...)
		ts := make([]string, len(g.Targets))
		for i, t := range g.Targets {
			ts[i] = strconv.Itoa(t)
		}
		meta["target"] = strings.Join(ts, ",")
	}
	for _, t := range tensors {
		if err := checkFinite(t.Name, t.Data); err != nil {
			return fmt.Errorf("%s: model %s: %w; nothing written", source, mf.model, err)
		}
	}
	if err := weights.WriteSafetensors(*out, tensors, meta); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %d tensors to %s\n", len(tensors), *out)
	return nil
}

package main

import (
	"flag"
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
	fs := newFlagSet("dump", "usage: probe dump --model DIR (--image PATH | --pixels FILE | --frames A,B) --out FILE.safetensors [--grads [--target K | --label L] [--params]]", stderr)
	var mf modelFlags
	mf.register(fs)
	image := fs.String("image", "", "image file to run")
	pixels := fs.String("pixels", "", "safetensors file holding pixel_values [B,3,H,W] (instead of --image)")
	out := fs.String("out", "", "output .safetensors file")
	frames := fs.String("frames", "", "A,B: two frames for the optical flow model (instead of --image); writes patches, inputs, … flow")
	grads := fs.Bool("grads", false, "also write the gradients of the target logit (grad.pixel_values, grad.attentions.{j}, grad.cross_attentions.*, grad.hidden_states.{i}), by the backward pass")
	target := targetVar(fs, "with --grads: the class whose logit is differentiated, for every image (top1: each image's own prediction)")
	label := optionalInt(fs, "label", -1, "with --grads: differentiate the cross-entropy loss −ln softmax(logits)[`L`] of each image instead of a logit; every grad.* is of that loss")
	params := fs.Bool("params", false, "with --grads: also write grad.param.<name> for every parameter (Hugging Face names; summed over the images)")
	if err := parseFlags(fs, args); err != nil {
		return errUsage
	}
	if err := target.check(); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, name := range []string{"target", "label", "params"} {
		if set[name] && !*grads {
			return fmt.Errorf("--%s applies to the gradients: add --grads", name)
		}
	}
	if set["label"] && set["target"] {
		return fmt.Errorf("--label (the cross-entropy loss) and --target (a logit) are two choices of what is differentiated: give one")
	}
	if set["label"] && *label < 0 {
		return fmt.Errorf("--label %d: a class index is 0 or more", *label)
	}
	if *frames != "" && *image == "" && *pixels == "" && fs.NArg() == 0 && *out != "" {
		if *grads {
			return fmt.Errorf("--grads: the backward pass is the image classifiers', not the flow model's (--frames)")
		}
		return dumpFrames(&mf, *frames, *out, stdout, stderr)
	}
	if fs.NArg() > 0 || *out == "" || (*image == "") == (*pixels == "") || *frames != "" {
		return badUsage(fs, "out", "image|pixels|frames")
	}
	m, err := mf.open(stderr)
	if err != nil {
		return err
	}
	defer m.Close()
	if *grads {
		n := m.Config.NumLabels()
		if !target.top1() {
			if _, err := target.resolve(m.Config.Labels(), nil); err != nil {
				return err
			}
		}
		if *label >= n {
			return fmt.Errorf("--label %d out of range: the model has %d classes (0…%d)", *label, n, n-1)
		}
	}

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
		if *label >= 0 {
			gt.Labels = slices.Repeat([]int{*label}, B)
		}
		if *params {
			gt.Params = core.AllParams
		}
		res, g, err = m.ForwardBackward(px.Data, B, px.Shape[2], px.Shape[3], core.TraceAll, gt)
		if err == nil && *label >= 0 && B > 1 {
			// The backward pass differentiates the batch's mean loss; each image's own loss is B
			// times its share (and the parameters' gradients sum the images' losses).
			scaleGradients(g, float32(B))
		}
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
		if *label >= 0 {
			meta["label"] = strconv.Itoa(*label)
			meta["loss"] = strconv.FormatFloat(g.Loss*float64(B), 'g', -1, 64)
			meta["differentiated"] = "cross-entropy −ln softmax(logits)[label], each image's own (summed over the images for grad.param.*)"
		} else {
			meta["target"] = strings.Join(ts, ",")
			meta["differentiated"] = "logit[target]"
		}
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

// scaleGradients multiplies every kept gradient by s.
func scaleGradients(g *core.Gradients, s float32) {
	scale := func(x []float32) {
		for i := range x {
			x[i] *= s
		}
	}
	scale(g.Pixels)
	scale(g.EncoderAttention)
	scale(g.DecoderAttention)
	for _, h := range g.HiddenStates {
		scale(h)
	}
	for _, a := range g.SelfAttentions {
		scale(a)
	}
	for _, p := range g.Params {
		scale(p.Data)
	}
}

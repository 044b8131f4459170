package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

func init() {
	register("layers", "list every tensor a model exposes, its stage, shape and weights, and its token grid", runLayers)
}

const layersHelp = `usage: probe layers (--model DIR | --random [--arch fourier|learned|conv]) [--json] [--size HxW]

The catalogue of what the model exposes: every tensor probe dump can write, with its shape for one
image, the stage it belongs to, where Hugging Face reports it (hidden_states lists each block
boundary twice, so 49 distinct states appear as 56 entries there), and for each self-attention
application the shared weight set it uses; then the token grid and its pixel geometry.

flags:`

func runLayers(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("layers", layersHelp, stderr)
	var mf modelFlags
	mf.register(fs)
	precision := precisionFlag(fs)
	random := fs.Bool("random", false, "describe the full-size architecture (no model folder needed)")
	arch := fs.String("arch", "fourier", "with --random: the architecture, fourier, learned or conv")
	asJSON := fs.Bool("json", false, "print one JSON object instead of a table")
	size := fs.String("size", "", "image size HxW (default: the processor's output size)")
	if err := parseFlags(fs, args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 || *random == (mf.model != "") {
		return badUsage(fs, "model|random")
	}
	m, err := mf.openOrRandom(*random, *arch, stderr)
	if err != nil {
		return err
	}
	defer m.Close()
	if err := applyPrecision(m, *precision, stderr); err != nil {
		return err
	}
	h, w := m.Preprocessor.Size.Height, m.Preprocessor.Size.Width
	if size, ok := m.TrainSize(); ok { // the optical flow model takes frames of its training size
		h, w = size[0], size[1]
	}
	if *size != "" {
		if _, err := fmt.Sscanf(strings.ReplaceAll(*size, "×", "x"), "%dx%d", &h, &w); err != nil || h < 1 || w < 1 {
			return fmt.Errorf("--size %q: want HxW, e.g. 224x224", *size)
		}
		// The image must be one the model could be run on: within --max-pixels (the decoders'
		// limit), so no shape overflows.
		limit := mf.maxPixels
		if limit < 0 { // no decoder limit: still none that overflows a shape's product
			limit = 1 << 40
		}
		if px := int64(h) * int64(w); h > 1<<20 || w > 1<<20 || px > limit {
			return fmt.Errorf("--size %s: %d×%d pixels is more than the %d an image may have (--max-pixels)", *size, h, w, limit)
		}
	}
	tensors, grid, err := m.Catalogue(h, w)
	if err != nil {
		return fmt.Errorf("--size %dx%d: %w", h, w, err)
	}
	c := &m.Config
	arch0, _ := c.Arch()
	model := map[string]any{
		"architecture": arch0, "input_stage": m.Weights.Input.Kind(), "d_model": c.DModel,
		"num_latents": c.NumLatents, "d_latents": c.DLatents, "num_blocks": c.NumBlocks,
		"num_self_attends_per_block": c.NumSelfAttendsPerBlock, "self_attention_heads": c.NumSelfAttentionHeads,
		"cross_attention_heads": c.NumCrossAttentionHeads, "labels": c.NumLabels(), "parameters": m.Weights.NumParams(),
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{
			"model": model,
			"grid": map[string]any{"rows": grid.Rows, "cols": grid.Cols, "tokens": grid.Tokens(), "image_height": grid.Height,
				"image_width": grid.Width, "stride": grid.Stride, "offset": grid.Offset, "description": grid.String()},
			"tensors": tensors,
		})
	}
	fmt.Fprintf(stdout, "model   %s (%s input stage), d_model %d, %d latents × %d, %d blocks × %d self-attention layers (%d heads, weights shared across blocks), %d cross-attention head(s), %d labels, %d parameters\n",
		arch0, m.Weights.Input.Kind(), c.DModel, c.NumLatents, c.DLatents, c.NumBlocks, c.NumSelfAttendsPerBlock,
		c.NumSelfAttentionHeads, c.NumCrossAttentionHeads, c.NumLabels(), m.Weights.NumParams())
	fmt.Fprintf(stdout, "grid    %d×%d image: %s\n\n", h, w, grid)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "tensor\tshape\tstage\tweights\tHugging Face\twhat")
	for _, t := range tensors {
		shape := strings.Trim(strings.ReplaceAll(fmt.Sprint(t.Shape), " ", ","), "")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, shape, t.Stage, t.Weights, t.HuggingFace, t.Description)
	}
	return tw.Flush()
}

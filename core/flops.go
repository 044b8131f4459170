package core

// FLOPs is the number of floating-point operations (multiply and add counted apart) of a forward
// pass on one h×w image as Hugging Face computes it: the matrix products and convolutions only,
// which are over 99% of the work; 0 if the model cannot take that size. Our single-head encoder
// skips the per-pixel key and value projections and computes the attention over the pixels from
// row and column sums (see encoder.go), and the decoder folds its projections likewise: about 43
// of the 406 GFLOPs of a 224² image are not executed, so GFLOPS reported against this count are
// "effective", comparable with PyTorch's, not the kernels' rate (ExecutedFLOPs counts that work).
// The learned model's encoder likewise executes one product over the tokens of the four, and the
// positions' projection once per model, not per image.
func (m *Model) FLOPs(h, w int) float64 {
	c := &m.Config
	W := &m.Weights
	g, err := W.Input.Grid(h, w)
	if err != nil {
		return 0
	}
	L, D, N := float64(c.NumLatents), float64(c.DLatents), float64(g.Tokens())
	f := m.inputStageFLOPs(h, w, N, true) // Hugging Face projects the learned positions every time
	ca := &W.CrossAttention.Attention
	qk, v := float64(ca.Self.Query.Out()), float64(ca.Self.Value.Out())
	f += 2 * N * float64(c.DModel) * (qk + v) // keys and values of every pixel
	f += 2 * L * D * qk                       // queries of the latents
	f += 2 * L * N * (qk + v)                 // scores and context
	f += 2 * L * v * D                        // output projection
	f += 4 * L * D * float64(W.CrossAttention.MLP.Dense1.Out())
	f += m.latentStackFLOPs()
	if dec, ok := W.Decoder.(*FlowDecoder); ok {
		f += dec.flops(N, L, D)
	}
	if dec := W.Classifier(); dec != nil {
		da := &dec.CrossAttention.Attention.Self
		f += 2 * L * D * float64(da.Key.Out()+da.Value.Out())
	}
	return f
}

// ExecutedFLOPs is the number of floating-point operations of the matrix products and convolutions
// this package executes for one h×w image, on the encoder path Forward takes (see encode): the
// work the kernels' GFLOPS are read against, where FLOPs is Hugging Face's.
func (m *Model) ExecutedFLOPs(h, w int) float64 {
	c := &m.Config
	W := &m.Weights
	g, err := W.Input.Grid(h, w)
	if err != nil {
		return 0
	}
	L, D, N := float64(c.NumLatents), float64(c.DLatents), float64(g.Tokens())
	C := float64(c.DModel)
	ca := &W.CrossAttention
	qk, v := float64(ca.Attention.Self.Query.Out()), float64(ca.Attention.Self.Value.Out())
	folded := ca.Heads == 1
	f := m.inputStageFLOPs(h, w, N, !folded) // folded, the learned positions are projected once per model
	f += 2 * L * v * D                       // output projection
	f += 4 * L * D * float64(ca.MLP.Dense1.Out())
	switch st := W.Input.(type) {
	case *FourierStage:
		if folded { // the separable encoder: products of the marginals by the position features
			f += 2 * L * (float64(h) + float64(w)) * float64(st.Spec.Channels()) / 2
		}
	case *LearnedStage:
		if folded { // one product of the weights by the position table
			f += 2 * L * N * float64(st.Projection.Out())
		}
	case *FlowStage:
		if folded { // scores over the patches, pooling of the projected patches (encoder_flow.go)
			f += 2 * L * N * float64(FlowPatchChannels+st.ConvAfterPatches.Out())
		}
	default:
		if folded { // scores and pooling over LN2(tokens)
			f += 2 * L * N * C * 2
		}
	}
	if !folded {
		f += 2*N*C*(qk+v) + 2*L*N*(qk+v)
	}
	f += 2 * L * v // the value projection of the pooled tokens (folded), or of the queries
	f += m.latentStackFLOPs()
	if dec, ok := W.Decoder.(*FlowDecoder); ok {
		fs := W.Input.(*FlowStage)
		f += 2 * N * FlowPatchChannels * float64(fs.ConvAfterPatches.Out()) // the decoder remakes its queries
		f += dec.executedFLOPs(N, L, D, !projectKeys)
	}
	if dec := W.Classifier(); dec != nil {
		f += 2 * L * D * 2 // the folded query's scores and pooling
		f += 2 * D * float64(dec.CrossAttention.Attention.Self.Value.Out())
		f += 4 * D * float64(dec.CrossAttention.MLP.Dense1.Out())
		f += 2 * D * float64(dec.FinalLayer.Out())
	}
	return f
}

// inputStageFLOPs is the work of the input stage on one h×w image of N tokens: the convolutions
// and projections, with the learned positions' projection when projectPositions.
func (m *Model) inputStageFLOPs(h, w int, N float64, projectPositions bool) float64 {
	switch s := m.Weights.Input.(type) {
	case *LearnedStage:
		f := 2 * float64(h*w) * 3 * float64(s.Conv.Out()) // the 1×1 convolution
		if projectPositions {
			f += 2 * float64(s.Positions.Shape[0]*s.Projection.In()) * float64(s.Projection.Out())
		}
		return f
	case *FlowStage:
		return 2 * N * FlowPatchChannels * float64(s.ConvAfterPatches.Out()) // conv_after_patches
	case *ConvStage:
		ch, cw := s.convSize(h), s.convSize(w)
		return 2 * float64(ch*cw) * float64(s.Conv.Weight.Len()) // the 7×7 convolution
	}
	return 0
}

// latentStackFLOPs is the work of the self-attention layers, applied num_blocks times.
func (m *Model) latentStackFLOPs() float64 {
	c, W := &m.Config, &m.Weights
	L, D := float64(c.NumLatents), float64(c.DLatents)
	var f float64
	for i := range W.SelfAttends {
		a := &W.SelfAttends[i].Attention.Self
		qk, v := float64(a.Query.Out()), float64(a.Value.Out())
		per := 2*L*D*(2*qk+v) + 2*L*L*(qk+v) + 2*L*v*D + 4*L*D*float64(W.SelfAttends[i].MLP.Dense1.Out())
		f += per * float64(c.NumBlocks)
	}
	return f
}

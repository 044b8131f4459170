// Package core is Hugging Face's vision Perceiver IO in Go: the image classifiers
// PerceiverForImageClassificationFourier, …Learned and …ConvProcessing
// (deepmind/vision-perceiver-fourier, -learned, -conv): their config, their weights, and a forward
// pass that can keep every internal state.
//
// Conventions:
//   - float32 throughout, row-major; activations are [positions, channels]; a batch adds a leading
//     B axis. Pixels come in as [B, 3, H, W], normalised by the image processor (package
//     core/preprocess).
//   - Linear weights are stored as in PyTorch, [out, in], and computed as y = x·Wᵀ + b.
//   - Weights are declared once, as struct fields tagged with their Hugging Face names (see
//     Weights), and loaded strictly: one error lists every missing, unexpected and mis-shaped tensor.
//   - LayerNorm uses eps 1e-5 (PyTorch's default; Hugging Face never passes config.layer_norm_eps),
//     GELU is the exact erf form, attention is scaled by 1/√(per-head width).
//   - Hidden states are the distinct ones: index 0 after the encoder cross-attention, index j after
//     self-attention application j (Hugging Face lists each block boundary twice).
//
// A model is composed of parts chosen from config.json's architectures (see Weights): an input
// stage (InputStage) that turns pixels into tokens on a TokenGrid — pixels with Fourier features
// (FourierStage), a 1×1 convolution with learned positions (LearnedStage), or a 7×7 convolution,
// BatchNorm, ReLU and max pool with Fourier features on the pooled grid (ConvStage) —; the encoder
// cross-attention (the latents attend to every token); the latent stack (num_self_attends_per_block
// layers applied num_blocks times with shared weights); and a Decoder (ClassificationDecoder: one
// trainable query attends to the latents, then a linear layer gives the logits). Maps over tokens
// are drawn on the pixel grid through the TokenGrid's geometry. Sizes config.json does not state
// (the stages' widths) come from the checkpoint's shapes, as Hugging Face's classes hard-code them.
//
// The optical flow model, PerceiverForOpticalFlow (deepmind/optical-flow-perceiver), is another input
// stage and another decoder on the same encoder and latent stack: FlowStage makes a token per pixel
// from the 3×3 patches of two frames (projected, with Fourier features at the training size), and
// FlowDecoder queries the latents with those same tokens, one per pixel, chunk by chunk. Its input
// is two frames [B, 2, 3, H, W] normalised to [−1, 1] (preprocess.FlowFrames) at the training
// size, through ForwardFrames; Output.Flow is [B, H, W, 2] in Hugging Face's units (pixels/20).
//
// Where exact algebra saves work, the forward pass uses it, and tests hold it to Hugging Face's
// numbers: with one encoder head (the released model) the key and value projections fold into the
// queries and the output (every input stage); for pixels with Fourier features, a specialisation
// of that fold computes the attention over the pixels from each latent's row and column sums,
// because LayerNorm is affine per pixel and each Fourier channel depends on one axis (encoder.go);
// for learned tokens another needs one product over the tokens instead of two, since the position
// table's share of every score is the same for every image (encoder_learned.go).
// The general path, with per-token projections streamed through an online softmax, serves several
// heads and is tested against the same reference. A linear layer's bias,
// and a residual, are added in the matrix kernel's epilogue, rounding as PyTorch does.
//
// The backward pass (backward.go, backward_ops.go, backward_input.go, backward_params.go) is
// reverse mode written op by op, for one scalar y: each image's target logit, or the batch's mean
// cross-entropy L = (1/B)·Σ_b (logsumexp(z_b) − z_b[y_b]) (GradTrace.Labels; Gradients.Loss holds
// L). Model.ForwardBackward runs the forward pass with Forward's kernels (the same numbers), then
// carries ∂y/∂logits back through the decoder, the latent stack, the encoder cross-attention and
// the input stage to pixel_values, keeping the gradients a GradTrace asks for (the pixels, every
// attention map, every hidden state).
//
// Parameter gradients (GradTrace.Params: AllParams, or DecoderParams for perceiver.decoder.* only,
// when the backward stops at the decoder) are formed beside each op's input gradient, by the same
// pass: a linear layer's dW = dYᵀ·X and db = Σ dY (X recomputed where the forward did not keep it:
// LN(x), GELU(a)), LayerNorm's dγ = Σ dY⊙x̂ and dβ = Σ dY, the latents and the decoder's query
// through their LayerNorm and residual, the learned positions through their projection (summed over
// the batch first), the convolutions' dW = dYᵀ·im2col(x), BatchNorm's weight and bias. BatchNorm is
// in eval mode, as Hugging Face's classifiers are fine-tuned here: its running statistics are frozen
// buffers, never updated, with no gradient. The folded one-head attentions (encoder, decoder) give
// the key projection dWk = scale·qᵀ·(dS·X) and the query dq = scale·(dS·X)·Wkᵀ; the key bias's true
// gradient is zero (a softmax is shift-invariant), computed as scale·qᵀ·(Σ dS), rounding noise. A
// self-attention layer applied in every block is one parameter: its gradient sums every use.
// Gradients are float32, the parameter's shape, summed over the batch, in named_parameters() order
// with Hugging Face's names (Weights.Trainable). After changing parameter values in place (an
// optimiser), call Model.WeightsChanged.
//
// The decoder and
// the encoder attention are differentiated in their folded one-head form, scores =
// scale·kq·LN2(x)ᵀ with kq = q·Wk and the value projection after the pooling, whichever path the
// forward took; the gradient of Hugging Face's probabilities adds the values' bias term bv·dctx
// per row (it cancels in the softmax, but it is part of ∂y/∂A). Into the pixels: Fourier tokens
// pass the colour channels through; learned tokens go through the 1×1 convolution; conv tokens
// through the max pool (to the first maximum of each window, as PyTorch routes it), ReLU,
// BatchNorm in eval mode (a per-channel scale) and the 7×7 convolution's transpose.
//
// A Rules value (rules.go) turns the same backward pass into a relevance propagation (AttnLRP,
// CP-LRP; presets in package explain): it changes the gradient only at LayerNorm (σ held
// constant), GELU (the identity rule), the two attention products (the uniform rule, or the
// probabilities held constant) — the softmax keeps its Jacobian —, and GradTrace.Budget reports
// Σ x⊙ĝ over the pixels, the position inputs, the initial latents and the decoder query. The zero
// value is the gradient. Parameter gradients are always the plain ones: ForwardBackward refuses
// GradTrace.Params with non-zero Rules.
//
// Memory: the backward keeps each self-attention application's activations from the forward pass
// (q, k, v, the probabilities, the state after the attention half, the MLP's pre-GELU values:
// about 18 MB per application and image at full size, 0.9 GB for all 48; with parameter gradients
// also the attention's context, 2 MB more per application) rather than recomputing them per
// application from the hidden states, which would cost one more pass through the latent stack —
// a third of the work of forward plus backward. Each application's activations are released as
// soon as the backward has passed it. GradTrace.Recompute chooses the other way (one
// application's activations at a time) where memory is scarcer than time. The encoder keeps one
// image's tokens, LN2(tokens), their gradient and two latents × tokens maps (the probabilities
// and the scores' gradient; 103 MB each at 224²); its queries' gradient is formed only for the
// parameters' (the latents, LN1, the query and key projections). Parameter gradients take one
// buffer the size of each trained parameter (200 MB at full size), summed over the images as the
// backward passes them; the decoder-only backward keeps only the final hidden state. The
// backward's products dx = dy·W read the weights untransposed, so
// each linear layer's weights are packed for them once more, on first use (about 150 MB at full
// size, beside the forward's packing).
package core

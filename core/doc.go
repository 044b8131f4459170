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
package core

// Package core is the Perceiver IO image classifier of Hugging Face's
// PerceiverForImageClassificationFourier (deepmind/vision-perceiver-fourier), in Go: its config, its
// weights, and a forward pass that can keep every internal state.
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
// The model is the sum of three stages: the encoder cross-attention (latents attend to every pixel
// with its Fourier position features), the latent stack (num_self_attends_per_block layers applied
// num_blocks times with shared weights) and the classification decoder (one trainable query attends
// to the latents, then a linear layer gives the logits).
//
// Where exact algebra saves work, the forward pass uses it, and tests hold it to Hugging Face's
// numbers: with one encoder head (the released model) the key and value projections fold into the
// queries and the output, and the attention over the pixels is computed from each latent's row
// and column sums, because LayerNorm is affine per pixel and each Fourier channel depends on one
// axis (encoder.go). The general path, with per-pixel projections streamed through an online
// softmax, serves several heads and is tested against the same reference. A linear layer's bias,
// and a residual, are added in the matrix kernel's epilogue, rounding as PyTorch does.
package core

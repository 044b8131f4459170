// Package explain holds the attribution methods of `probe explain`: maps that say which parts of
// one image a model's output rests on, class-agnostic (attention reductions) or class-specific
// (gradients of the target logit, through the backward pass in core).
//
// Conventions:
//   - A method explains one normalised image [3, H, W] (as from the image processor) and one class,
//     the Target; y is that class's logit, as in Captum and Chefer et al.
//   - A Map lives on its own grid: the model's token grid for the attention-based methods (mean,
//     decoder, rollout, chefer, grad-rollout), the pixel grid (Stride 1, Rows = Height) for the
//     gradient-based ones (saliency, input-x-gradient, integrated-gradients, smoothgrad). Values are
//     row-major, Rows·Cols of them. TokenGrid.ToPixels draws a token map on the pixels.
//   - attnlrp and cp-lrp (relevance.go) are relevance propagations: one forward and one backward
//     pass under a core.Rules preset (AttnLRP, CPLRP), map = Σ_c x_c ⊙ ĝ_x,c on the pixel grid
//     (signed, not normalised); their Map also carries a Conservation record (where the logit's
//     relevance went), each latent's relevance after the encoder cross-attention (Latents) and the
//     most relevant latents' encoder attention (TopLatents).
//   - Signed maps (input-x-gradient, integrated-gradients, attnlrp, cp-lrp) are drawn with a diverging colour map
//     centred on zero; the others are non-negative.
//   - Methods are registered by name (Register) so that tools can list and iterate over them; the
//     registry is filled in init functions and read-only afterwards, so safe for concurrent use.
//     A method's own numbers for a summary (integrated gradients' completeness check) go in
//     Map.Notes.
//   - chefer, grad-rollout, saliency and input-x-gradient come from one forward and backward pass
//     (GradientMaps computes any of them together); the self-attention maps are folded into the
//     relevance as the backward pass reaches them (core.GradTrace.OnSelfAttention), never held
//     together. Integrated gradients and smoothgrad run their images through the backward pass in
//     batches sized to a memory budget.
//   - Bad input (a target out of range, a wrong pixel count, a bad option) is a one-line error.
package explain

// Package ablation knocks out the Perceiver's latents one at a time and measures what each one is
// worth to a class.
//
// Protocol (issue 16): the image goes through the input stage and the encoder cross-attention once
// (core.Model.Encode), giving hidden state 0, the latents h [L, D] the self-attention stack
// starts from. For each chosen latent ℓ, a copy of h has row ℓ replaced by zeros (mode zero) or by
// a fixed vector, normally latent ℓ's mean over a data set (mode mean, see Mean); the latent stack
// and the decoder then run on the copy (core.Model.ForwardLatents), and
//
//	Δℓ = y(x) − y_ℓ(x)
//
// with y the target class's logit unablated and y_ℓ with ℓ replaced. Δℓ > 0: the latent supported
// the class. Ablations are independent, so copies go through the stack in batches; K ablations
// cost K passes of the latent stack and the decoder (plus one for y(x)), never the encoder again.
//
// Sums of means are taken in float64; everything else is float32 as in core.
package ablation

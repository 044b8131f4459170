// Package sae learns TopK sparse autoencoders (Gao et al. 2024, arXiv 2406.04093) on
// representations: a Parquet column (one vector per image) or a per-latent token store (one
// sample per image and kept latent), and reads them back as sparse codes and feature summaries.
//
// The model, as the recipe in the project's specs (sae.md) fixes it:
//
//	pre = W_enc (x − b_dec) + b_enc        W_enc [M, d], b_enc [M]
//	z   = ReLU of the K largest entries of pre, 0 elsewhere (ties: lower index first)
//	x̂   = W_dec z + b_dec                  W_dec [d, M] with unit-norm columns, b_dec [d]
//
// Inputs are used raw; the loss is the batch's squared error over the training data's variance
// (so it is the batch FVU) plus 1/32 of the AuxK loss, which reconstructs the residual from the
// k' largest pre-activations of dead latents (none fired for DeadWindow training rows). Training
// is Adam (β 0.9/0.999, ε 6.25e-10, constant rate), W_dec columns kept at unit norm after every
// step with the gradient's parallel component removed before it, W_enc initialised as W_decᵀ,
// b_dec as the training rows' geometric median.
//
// Conventions: float32 parameters and row-major matrices; W_dec is held transposed in memory
// (Dict, [M, d]: row j is decoder column j) so that a code's few active entries read contiguous
// rows, and saved as [d, M]. Report statistics are float64 sums. Splits are over units: images
// (rows of a Parquet file or of a token store), so all of an image's tokens are on one side.
// Every random choice draws from math/rand/v2 PCG seeded with the run's seed and a stream
// number, so a resumed run repeats the uninterrupted one bit for bit.
package sae

// Package train fits a vision Perceiver's parameters to labelled images: the optimiser (AdamW, as
// torch.optim.AdamW), the learning-rate schedule, the order of the batches, Hugging Face's
// initialisation for fresh models and fresh classification layers, and checkpoints a run resumes
// from. `probe train` (cmd/probe/train.go) wires it to data sources and output folders.
//
// Conventions (the exact semantics are those of the project's training spec):
//   - A step is Forward → mean cross-entropy over the batch → Backward to the trained parameters →
//     one AdamW update. The forward pass is eval-mode: no dropout, BatchNorm on its running
//     statistics, which are buffers and never change; the same inputs give the same step.
//   - Update k = 0…S−1 uses lr_k = LR·f(k): f = k/W during the W warmup updates (the first update
//     of a warmed-up run has lr 0), then 1 (constant) or ½(1 + cos(π(k−W)/max(1, S−W))) (cosine).
//   - AdamW decays every trained parameter first, θ ← θ·(1 − lr_k·λ), on the old θ, then takes the
//     Adam step with bias corrections for t = k+1 (t counts every update, lr-0 ones too); β1 0.9,
//     β2 0.999, ε 1e-8. Moments are float32, zero before the first update; the arithmetic of one
//     element is float64, rounded once to float32.
//   - Batches: in source order (Shuffle false) the items are cut into consecutive batches of B, the
//     last partial batch a step of its own, an epoch ceil(n/B) steps, epochs repeating the order;
//     shuffled, each epoch uses a permutation drawn from (seed, epoch), so a resumed run sees the
//     batches an uninterrupted one would.
//   - Parameters are the Hugging Face named_parameters(): the state dict without BatchNorm's
//     running statistics and num_batches_tracked. Training the decoder only leaves every other
//     tensor byte-identical.
//   - A checkpoint is one safetensors file (weights, moments, and the run's state and identity as
//     JSON metadata) written to a temporary name and renamed: a run killed at any moment leaves
//     the previous checkpoint or the new one, never a mix.
package train

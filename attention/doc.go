// Package attention holds the multi-head attention kernels of the Perceiver and the reductions of
// its attention maps.
//
// Conventions: every matrix is row-major float32 with rows = positions and columns = channels.
// Multi-head tensors keep the heads side by side in the channel axis, as Hugging Face does before
// its transpose_for_scores: a query matrix of h heads of width d is [positions, h·d] with head j in
// columns j·d … (j+1)·d−1. Attention probabilities are [heads, queries, keys]; each row sums to 1.
//
// Kernels take their outputs first and allocate nothing; the caller owns every buffer, so a
// forward pass can reuse them from image to image.
package attention

// Package similarity compares representations of the same rows (inputs): layer against layer of one
// model, or a layer of one model against a layer of another, by centred kernel alignment (CKA),
// representational similarity analysis (RSA), the nearest-neighbour alignments of Huh et al. 2024
// (mutual k-NN, CKNNA), SVCCA, and the angular shape distances of Williams et al. 2021 (Procrustes,
// angular CKA).
//
// Conventions:
//   - A Representation is a row-major float32 matrix X [n, d]: row i is input i. Every
//     representation in one comparison has the same n, and row i is the same input in all of them
//     (the caller matches rows by id).
//   - Linear CKA (Kornblith et al. 2019): with X and Y centred per column (feature),
//     CKA(X, Y) = ‖YᵀX‖²_F / (‖XᵀX‖_F · ‖YᵀY‖_F). It is computed in feature space (d×d products,
//     O(n·d²) time, never an n×n matrix) and equals HSIC(K, L)/√(HSIC(K, K)·HSIC(L, L)) for the
//     linear kernels K = XXᵀ, L = YYᵀ with the biased estimator HSIC = tr(KHLH), H = I − 11ᵀ/n.
//   - Debiased CKA replaces the biased HSIC by the unbiased estimator of Song et al. 2012:
//     with K̃, L̃ the kernels with zeroed diagonals,
//     HSIC₁(K, L) = [tr(K̃L̃) + (1ᵀK̃1)(1ᵀL̃1)/((n−1)(n−2)) − 2/(n−2)·1ᵀK̃L̃1] / (n(n−3)),
//     and CKA = HSIC₁(K, L)/√(HSIC₁(K, K)·HSIC₁(L, L)) (Kornblith's reference code:
//     center_gram(unbiased=True)). It needs n ≥ 4. Plain CKA is biased upwards when n is not much
//     larger than d (independent data can score near 1 when n < d); the debiased estimate of
//     independent data stays near 0. It is also computed in feature space:
//     tr(K̃L̃) = ‖XᵀY‖²_F − Σᵢ‖xᵢ‖²‖yᵢ‖², K̃1 = X(Xᵀ1) − (‖xᵢ‖²)ᵢ. It is NaN when HSIC₁(K, K) or
//     HSIC₁(L, L) is not positive (for example a constant representation).
//   - RBF CKA: plain CKA of the Gaussian kernels K_ij = exp(−‖xᵢ − xⱼ‖²/(2σ²)), with the bandwidth
//     σ = threshold × the median of the n(n−1)/2 distances ‖xᵢ − xⱼ‖, i < j (the mean of the two
//     middle ones for an even count). Kornblith's code takes the median of the squared distances
//     over the full n×n matrix, diagonal zeros included; ours leaves out the diagonal. It needs the
//     n×n Gram matrices: O(n²) memory per representation.
//   - RSA: each representation gives a representational dissimilarity matrix (RDM) between rows:
//     "correlation" 1 − Pearson r of rows xᵢ and xⱼ across features (the default), "cosine"
//     1 − cos(xᵢ, xⱼ), or "euclidean" ‖xᵢ − xⱼ‖. Two RDMs are compared over their upper triangles
//     (the n(n−1)/2 pairs i < j) by "spearman" (Pearson r of the ranks, tied values getting their
//     average rank; the default), "pearson", or "kendall" (τ_b, which accounts for ties;
//     O(m log m) per pair of RDMs, m = n(n−1)/2, so much slower than the others).
//   - Permutation tests (Options.Permutations = N): the rows of the second representation are
//     permuted (for RSA: the rows and columns of its RDM together, the Mantel test), the
//     statistic recomputed, and p = (1 + #{permuted ≥ observed})/(N + 1), one-sided. The same N
//     permutations, drawn from Options.Seed with a PCG, serve every pair.
//   - Arithmetic: products of features are float32 (internal/sgemm, inputs centred first so that
//     float32 keeps the small differences); every sum over rows, pairs or matrix entries is float64.
//     Results agree with float64 references to about 1e-5 (see the tests).
//   - Rows to unit length: x̂ = x/max(‖x‖₂, 1e-12) (platonic-rep's compute_score(normalize=True);
//     its outlier clamp prepare_features is not applied).
//   - mutual-knn: N_X(i) = the K rows j ≠ i with the largest x̂ᵢ·x̂ⱼ, exact ties to the lower row;
//     score (1/n) Σᵢ |N_X(i) ∩ N_Y(i)| / K (platonic-rep mutual_knn). Needs n ≥ K+1.
//   - cknna: K = X̂X̂ᵀ, L = ŶŶᵀ, M = M_X ⊙ M_Y the row-wise masks of the K nearest (self excluded);
//     H(A, B) = [Σ ÃᵢⱼB̃ⱼᵢ + (1ᵀÃ1)(1ᵀB̃1)/((n−1)(n−2)) − 2·1ᵀÃB̃1/(n−2)] / (n(n−3)) (platonic-rep's
//     hsic_unbiased, B̃ᵀ in the first term); s(K, L) = H(M⊙K, M⊙L), s(K, K) = H(M_X⊙K, M_X⊙K);
//     score s(K, L)/(√(s(K, K)·s(L, L)) + 1e-6), NaN when the product is negative. Not symmetric.
//   - mutual-knn and cknna compute x̂ and the similarities in float64 (Representation.Exact when
//     the source was float64). The search is blocked (no n×n matrix): float32 tiles screen each
//     row's K+16 best candidates, re-ranked in float64; rows the float32 error bound leaves
//     undecided are searched in full in float64 (see buildKNN), so the graph is the float64 one.
//   - svcca: each side x̂, columns centred and divided by (std with ddof=1) + 1e-8; U = the top
//     k = min(D, d, n−1) left singular vectors (exact subspace); score = mean of the min(k_X, k_Y)
//     singular values of U_XᵀU_Y, clipped to [0, 1]. NaN when the k-th singular value is 0.
//   - procrustes: arccos(‖XcᵀYc‖_* / (‖Xc‖_F ‖Yc‖_F)), column-centred, rows not normalised (netrep
//     LinearMetric(alpha=1, score_method="angular")); cka-angular: arccos of the value cka gives.
//     Both are distances in radians in [0, π/2], smaller = more similar (Result.Distance).
//   - Compare of a set with itself computes each unordered pair once and mirrors it (CKNNA, which is
//     not symmetric, computes both orders); the diagonal is
//     computed, not assumed to be 1 (debiased CKA of a constant column is NaN).
package similarity

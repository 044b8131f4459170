// Package faithfulness scores attribution maps by perturbation: remove the pixels a map ranks
// highest and the prediction should collapse fast (positive perturbation); remove those it ranks
// lowest and it should survive (negative perturbation), as in Chefer et al. (2021).
//
// The protocol, exactly (issue 16):
//   - The target is the unperturbed prediction: the largest logit, ties to the lower class index.
//   - A map is brought to the pixel grid first, N = H·W values (token maps through the model's
//     TokenGrid.ToPixels).
//   - Positive: pixels ranked by map value descending, equal values by the lower flat index
//     (row·W + col) first. Negative: ranked ascending, equal values again by the lower index first.
//     A map holding NaN is an error.
//   - For f = k/steps, k = 0 … steps−1, the first ⌊f·N⌋ pixels of the ranking (computed exactly,
//     as k·N div steps) are set to 0 in pixel_values, in all three channels, and the model runs
//     on the result. Recorded: the softmax probability of the target (in float64 from the float32
//     logits) and whether the prediction (argmax, ties to the lower index) is still the target
//     (1 or 0). k = 0 is the unperturbed image.
//   - Curves are averaged over images; the area under each averaged curve is taken by the
//     trapezoid rule over f: Σ_k (f_{k+1} − f_k)·(y_k + y_{k+1})/2 over k = 0 … steps−2.
//
// A faithful map has a small positive AUC and a large negative AUC. Perturbed copies of one image
// (every map, both directions, every k > 0) run through the model in batches (Evaluate).
//
// A Report (NewReport) ranks methods by Score = negative AUC − positive AUC of the probability,
// with its standard error over the images, and writes report.json, report.md and curves.png.
//
// ROAD (remove and debias, Rong et al. 2022; issue 25; road.go), exactly:
//   - The same ranking (MoRF = positive order, LeRF = negative order, ties by the lower flat index;
//     signed maps by their signed value).
//   - Fractions p_j = j/steps, j = 1 … steps−1; the first k_j = j·N div steps pixels of the order
//     are removed. LeRF(p) removes the p least relevant: p is the fraction removed in both orders
//     (tleemann/road_evaluation's and pytorch-grad-cam's LeRF(p) keep the top p: ours at p is
//     theirs at 1 − p).
//   - Noisy linear imputation: each removed pixel equals the weighted mean of its in-image 8
//     neighbours (1/6 edge-adjacent, 1/12 diagonal; out-of-image neighbours dropped), all removed
//     pixels jointly, known pixels fixed; one sparse symmetric positive-definite system per image
//     and fraction with three right-hand sides, solved in pixel_values space by conjugate gradients
//     with a diagonal preconditioner to ‖b − Ax‖₂ ≤ 1e-10 per channel (Imputer; no dense matrix).
//     Then (σ/image_std_c)·z, z ~ N(0,1), is added to channel c's imputed values (σ in [0,1]
//     intensity units; 0: none), one stream per (seed, image, order, fraction).
//   - Score P_j = softmax probability of the unperturbed top-1 (float64 from float32 logits),
//     averaged over images; AUC by the trapezoid rule over the given p_j only (not rescaled).
//     RoadScore = LeRF AUC − MoRF AUC.
//
// Sanity checks (Adebayo et al. 2018; Sixt et al. 2020; sanity.go): Cascade re-initialises a
// classifier's parameters as Hugging Face's _init_weights does, group by group from the output end
// (SanityGroups: decoder, self_attends.{S−1} … self_attends.0, cross_attention, input), keeping
// earlier draws; Compare scores two maps by Spearman's rank correlation of |maps| and of signed
// maps (average ranks; nil for a constant map) and by SSIM of |m|/max|m| exactly as
// skimage.metrics.structural_similarity(data_range=1) computes it with its defaults (nil below
// 7×7). RandomLogitClass draws the random-logit test's class.
package faithfulness

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
package faithfulness

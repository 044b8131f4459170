// Package linear evaluates how linearly decodable class labels are from stored embeddings: the
// linear-probe protocol of CLIP, DINO and MAE (L2-regularised multinomial logistic regression, the
// strength chosen on a validation split or by K-fold, a single refit and one evaluation on test) and
// a cosine kNN baseline, with honest metrics, a report folder (JSON, Markdown, PNG plots) and .npy /
// CSV export.
//
// Conventions:
//   - Feature matrices are row-major [samples, features]; float32 on input, float64 inside the
//     solver. Weights are [classes, features] (PyTorch's [out, in]); logits = x·Wᵀ + b.
//   - The objective is scikit-learn's, summed over samples: Σᵢ CE(xᵢ, yᵢ) + ‖W‖²/(2C), the intercept
//     unpenalised. scikit-learn's lbfgs minimises C times this; the minimiser is the same.
//     Internally the solver minimises the same function divided by n, so tolerances do not scale
//     with the data set size.
//   - Features are standardised (mean, population standard deviation; a zero deviation is replaced
//     by 1) with statistics of the rows the model is fitted on, never of validation or test rows.
//   - Labels are class indices in [0, len(Classes)). Split values are "train", "val" (or
//     "validation", "valid") and "test".
//   - kNN baseline (DINO): features L2-normalised, cosine similarity to the train+val rows, the k
//     most similar vote with weight exp(sim/T), default k = 20 and T = 0.07. Several k
//     (KNNOptions.Ks, e.g. DINO's 10, 20, 100, 200) are scored from one neighbour search; k is
//     capped at the number of bank rows.
//   - Balanced accuracy is the mean recall over the classes present in the split (scikit-learn's
//     balanced_accuracy_score); every Metrics has it.
//   - The C grid defaults to CLIP's sweep, 1e-6 … 1e6 in decades, fitted from strong to weak
//     regularisation with each fit warm-started from the previous one.
//   - A column name "a+b" is the concatenation of columns a and b (each row a's values then b's),
//     placed in the depth order at its deepest part.
//   - Few-shot (Config.Shots, Seeds): per draw, k train rows per class (all of a class's rows if it
//     has fewer), standardised on themselves, C chosen on val as above (the full protocol's C when
//     selecting by K-fold), scored on test; mean and sample standard deviation over the draws.
//   - Bootstrap (Config.Bootstrap = B): B resamples of the test rows with replacement; the 2.5th
//     and 97.5th percentiles of their top-1 (linear interpolation, numpy's default) bound a 95%
//     interval. It reflects test-set sampling only, not the randomness of the split or the fit.
//   - Everything random is drawn from a PCG seeded by Config.Seed with our own Fisher–Yates
//     shuffle, so splits are the same on every run and platform. Sums over rows use a fixed
//     partition, so a report is bit-for-bit repeatable on one machine whatever GOMAXPROCS; the
//     AVX2+FMA kernels round differently from the portable ones, so the last bits of fitted
//     weights may differ between CPUs with and without FMA.
//   - The solver's hot loop is one fused pass over the rows per evaluation (logits, softmax,
//     gradient), with AVX2+FMA assembly where available: gonum's Gemm is slow for [n,d]·[d,K]
//     with K ≈ 10.
package linear

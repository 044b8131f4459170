package attention

// Attention maps: reductions of captured attention probabilities to maps over the input grid.
//
// Layouts, for one image, row-major:
//
//	C  [L, N]          encoder cross-attention, one head (average several with MeanHeads first);
//	                   row l is latent l's distribution over the N = H·W input positions,
//	                   position index row*W + col, so a map reshapes to H×W without copying.
//	A  [heads, L, L]   one self-attention application; rows are queries and sum to 1.
//	d  [L]             the decoder query's attention over the final latents (one query, one head).
//
// The four maps of `probe attention`, each a length-N vector:
//
//	latent l:  m[p] = C[l, p]
//	mean:      m[p] = (1/L) Σ_l C[l, p]
//	decoder:   m[p] = Σ_l d[l] · C[l, p]            (WeightedMap with w = d)
//	rollout:   m[p] = Σ_l w[l] · C[l, p],  w = d · R (WeightedMap with w from Rollout.LatentWeights)
//	           R = Â_J · … · Â_1,  Â_j = renorm(½·I + ½·mean_heads(A_j)),
//	           renorm dividing each row by its sum, A_1 the first self-attention application.
//
// Since every map is linear in C, the mean map can be taken as soon as C exists, and the rollout
// needs only one L×L product per application (Rollout), never the J self-attention maps at once.
// C itself (L·N floats, 103 MB at 224²) must live until d is known, for the decoder and rollout maps.
//
// Batches: C, A and d of a batch are the per-image tensors stacked on a leading axis; pass
// the image's slice (e.g. cross[b*L*N:(b+1)*L*N]) to the map functions. Rollout keeps one
// product per image and takes the whole batch's [B, heads, L, L] probabilities at once.

import (
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/perceiverkit/perceiver/internal/sgemm"
)

func checkLen(fn, name string, got, want int) {
	if got != want {
		panic(ShapeError("attention." + fn + ": " + fmt.Sprintf("len(%s) = %d, want %d", name, got, want)))
	}
}

func checkDims(fn string, dims ...int) {
	for _, d := range dims {
		if d <= 0 {
			// The copy keeps dims on the caller's stack: formatting the original would move
			// every call's variadic slice to the heap.
			panic(ShapeError("attention." + fn + ": " + fmt.Sprintf("dimensions %v must be positive", slices.Clone(dims))))
		}
	}
}

// accBlock is the number of positions reduced at once: the float64 accumulators stay on the
// stack and each latent's row is read in contiguous runs, so no allocation and no strided reads.
const accBlock = 512

// LatentMap copies latent's row of the cross-attention C [latents·n] into dst [n]:
// dst[p] = C[latent, p]. The number of latents is len(cross)/n.
func LatentMap(dst, cross []float32, latent, n int) {
	checkDims("LatentMap", n)
	checkLen("LatentMap", "dst", len(dst), n)
	if len(cross)%n != 0 || latent < 0 || latent >= len(cross)/n {
		panic(ShapeError("attention.LatentMap: " + fmt.Sprintf(
			"latent %d out of range for len(cross) = %d with n = %d", latent, len(cross), n)))
	}
	copy(dst, cross[latent*n:(latent+1)*n])
}

// MeanMap writes the mean over latents of the cross-attention C [latents, n] into dst [n]:
// dst[p] = (1/L) Σ_l C[l, p], summed in float64.
func MeanMap(dst, cross []float32, latents, n int) {
	checkDims("MeanMap", latents, n)
	checkLen("MeanMap", "dst", len(dst), n)
	checkLen("MeanMap", "cross", len(cross), latents*n)
	reduceRows(dst, nil, 1/float64(latents), cross, latents, n)
}

// WeightedMap writes the weights-weighted sum of the rows of the cross-attention C [latents, n]
// into dst [n]: dst[p] = Σ_l weights[l] · C[l, p], summed in float64. With the decoder's
// attention as weights it is the decoder map; with Rollout.LatentWeights, the rollout map.
func WeightedMap(dst, weights, cross []float32, latents, n int) {
	checkDims("WeightedMap", latents, n)
	checkLen("WeightedMap", "dst", len(dst), n)
	checkLen("WeightedMap", "weights", len(weights), latents)
	checkLen("WeightedMap", "cross", len(cross), latents*n)
	reduceRows(dst, weights, 1, cross, latents, n)
}

// reduceRows sets dst[p] = scale · Σ_l w[l]·C[l, p], with w[l] = 1 when weights is nil.
func reduceRows(dst, weights []float32, scale float64, cross []float32, latents, n int) {
	var acc [accBlock]float64
	for p0 := 0; p0 < n; p0 += accBlock {
		width := min(accBlock, n-p0)
		a := acc[:width]
		clear(a)
		for l := range latents {
			row := cross[l*n+p0 : l*n+p0+width]
			if weights == nil {
				for j, c := range row {
					a[j] += float64(c)
				}
				continue
			}
			w := float64(weights[l])
			if w == 0 {
				continue
			}
			for j, c := range row {
				a[j] += w * float64(c)
			}
		}
		out := dst[p0 : p0+width]
		for j := range out {
			out[j] = float32(scale * a[j])
		}
	}
}

// MeanHeads writes the mean over heads of probs [heads, rows, cols] into dst [rows, cols].
// Use it to reduce a multi-head cross-attention to the one-head C the map functions take.
func MeanHeads(dst, probs []float32, heads, rows, cols int) {
	checkDims("MeanHeads", heads, rows, cols)
	size := rows * cols
	checkLen("MeanHeads", "dst", len(dst), size)
	checkLen("MeanHeads", "probs", len(probs), heads*size)
	meanHeads(dst, probs, heads, size)
}

func meanHeads(dst, probs []float32, heads, size int) {
	copy(dst, probs[:size])
	for h := 1; h < heads; h++ {
		src := probs[h*size : (h+1)*size]
		for i, v := range src {
			dst[i] += v
		}
	}
	if heads > 1 {
		inv := 1 / float32(heads)
		for i := range dst {
			dst[i] *= inv
		}
	}
}

// TopLatents returns the indices of the k largest entries of the decoder's attention over
// latents, largest first; equal weights keep the lower index first. k is clamped to
// [0, len(decoder)]. NaN weights sort last.
func TopLatents(decoder []float32, k int) []int {
	k = max(0, min(k, len(decoder)))
	idx := make([]int, len(decoder))
	for i := range idx {
		idx[i] = i
	}
	key := func(i int) float64 {
		v := float64(decoder[i])
		if math.IsNaN(v) {
			return math.Inf(-1)
		}
		return v
	}
	sort.SliceStable(idx, func(a, b int) bool { return key(idx[a]) > key(idx[b]) })
	return idx[:k:k]
}

// Rollout accumulates attention rollout through the latent self-attention stack, one
// application at a time, for a batch of images:
//
//	R = Â_J · … · Â_1,   Â_j = renorm(½·I + ½·mean_heads(A_j)),
//
// where A_j [heads, L, L] is the j-th application's probabilities (rows are queries) and renorm
// divides each row by its sum. R[i, k] is how much final latent i draws on latent k as it
// came out of the encoder cross-attention; before any Add, R = I. Memory is two L×L scratch
// matrices plus one L×L product per image, whatever the number of applications.
type Rollout struct {
	batch, latents int
	applications   int
	product        []float32 // [batch, L, L]: R for each image
	averaged       []float32 // [L, L]: Â of the current application
	scratch        []float32 // [L, L]: Â·R before it replaces R
}

// NewRollout returns an accumulator for batch images of latents latents, with R = I.
func NewRollout(batch, latents int) *Rollout {
	checkDims("NewRollout", batch, latents)
	size := latents * latents
	r := &Rollout{
		batch:    batch,
		latents:  latents,
		product:  make([]float32, batch*size),
		averaged: make([]float32, size),
		scratch:  make([]float32, size),
	}
	r.Reset()
	return r
}

// Reset sets R back to the identity for every image, to reuse the accumulator.
func (r *Rollout) Reset() {
	clear(r.product)
	size := r.latents * r.latents
	for b := range r.batch {
		for i := range r.latents {
			r.product[b*size+i*r.latents+i] = 1
		}
	}
	r.applications = 0
}

// Add folds one self-attention application into R: R ← Â·R. probs holds the application's
// probabilities for the whole batch, [batch, heads, L, L], rows being queries.
func (r *Rollout) Add(probs []float32, heads int) {
	checkDims("Rollout.Add", heads)
	l := r.latents
	size := l * l
	checkLen("Rollout.Add", "probs", len(probs), r.batch*heads*size)
	for b := range r.batch {
		a := r.averaged
		meanHeads(a, probs[b*heads*size:(b+1)*heads*size], heads, size)
		for i := range l {
			row := a[i*l : (i+1)*l]
			for k := range row {
				row[k] *= 0.5
			}
			row[i] += 0.5
			var sum float64
			for _, v := range row {
				sum += float64(v)
			}
			inv := float32(1 / sum)
			for k := range row {
				row[k] *= inv
			}
		}
		prod := r.product[b*size : (b+1)*size]
		if r.applications == 0 {
			copy(prod, a) // Â·I
			continue
		}
		sgemm.Gemm(false, false, l, l, l, 1, a, l, prod, l, 0, r.scratch, l)
		copy(prod, r.scratch)
	}
	r.applications++
}

// Applications returns the number of Add calls since creation or the last Reset.
func (r *Rollout) Applications() int { return r.applications }

// Latents returns L.
func (r *Rollout) Latents() int { return r.latents }

// Matrix returns image b's rollout R [L, L]. It is a view into the accumulator, valid until the
// next Add or Reset; copy it to keep it.
func (r *Rollout) Matrix(b int) []float32 {
	if b < 0 || b >= r.batch {
		panic(ShapeError("attention.Rollout.Matrix: " + fmt.Sprintf("image %d out of range [0, %d)", b, r.batch)))
	}
	size := r.latents * r.latents
	return r.product[b*size : (b+1)*size]
}

// LatentWeights writes w = d·R for image b into dst [L]: the decoder's attention d [L] over the
// final latents carried back to the latents that left the cross-attention. Summed in float64.
func (r *Rollout) LatentWeights(dst []float32, b int, decoder []float32) {
	l := r.latents
	checkLen("Rollout.LatentWeights", "dst", len(dst), l)
	checkLen("Rollout.LatentWeights", "decoder", len(decoder), l)
	reduceRows(dst, decoder, 1, r.Matrix(b), l, l)
}

package core

import (
	"github.com/perceiverkit/perceiver/internal/par"
	"github.com/perceiverkit/perceiver/internal/sgemm"
	"github.com/perceiverkit/perceiver/internal/vecmath"
)

// layerNormEps is PyTorch's nn.LayerNorm default. Hugging Face builds every Perceiver LayerNorm
// without passing config.layer_norm_eps, so that field is never used.
const layerNormEps = 1e-5

// linear computes dst [rows, out] = x [rows, in]·Wᵀ + b.
func linear(dst, x []float32, rows int, l *Linear) {
	in, out := l.In(), l.Out()
	if pb := l.packedWeight(); pb != nil {
		sgemm.GemmPacked(rows, 1, x, in, false, pb, l.Bias.Data, 0, dst, out)
		return
	}
	// Weights replaced since packing: the same sums, B packed per call.
	for r := 0; r < rows; r++ {
		copy(dst[r*out:(r+1)*out], l.Bias.Data)
	}
	gemm := sgemm.Gemm
	if l.precision == BF16 {
		gemm = sgemm.GemmBF16
	}
	gemm(false, true, rows, out, in, 1, x, in, l.Weight.Data, in, 1, dst, out)
}

// linearAdd computes dst += x·Wᵀ + b, a layer's output added to the residual already in dst,
// rounded as PyTorch rounds it: (x·Wᵀ + b) + dst. With packed weights the residual is added in the
// matrix kernel's epilogue, with no pass over a separate output.
func linearAdd(dst, x []float32, rows int, l *Linear) {
	in, out := l.In(), l.Out()
	if pb := l.packedWeight(); pb != nil {
		sgemm.GemmPacked(rows, 1, x, in, false, pb, l.Bias.Data, 1, dst, out)
		return
	}
	tmp := make([]float32, rows*out)
	linear(tmp, x, rows, l)
	add(dst, tmp)
}

// foldKey returns q·W [rows, in] for the queries q [rows, out] of a one-head attention and its key
// projection W [out, in]: the queries moved into the space of the keys' inputs x, since
// q·(x·Wᵀ + b)ᵀ = (q·W)·xᵀ + q·b and q·b, the same for every key, cancels in the softmax.
func foldKey(q []float32, rows int, key *Linear) []float32 {
	in, out := key.In(), key.Out()
	kq := make([]float32, rows*in)
	sgemm.Gemm(false, false, rows, in, out, 1, q, out, key.Weight.Data, in, 0, kq, in)
	return kq
}

// layerNorm normalises each of the rows rows of x (n channels) into dst, with float64 statistics.
func layerNorm(dst, x []float32, rows int, ln *LayerNorm) {
	n := len(ln.Weight.Data)
	w, b := ln.Weight.Data, ln.Bias.Data
	par.For(rows, max(1, 8192/n), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			vecmath.LayerNormRow(dst[r*n:(r+1)*n], x[r*n:(r+1)*n], w, b, layerNormEps)
		}
	})
}

// gelu applies the exact GELU, x·Φ(x) = x/2·(1 + erf(x/√2)), in place.
func gelu(x []float32) {
	par.For(len(x), 16384, func(lo, hi int) {
		vecmath.GELU(x[lo:hi], x[lo:hi])
	})
}

// add computes dst += x.
func add(dst, x []float32) {
	for i, v := range x {
		dst[i] += v
	}
}

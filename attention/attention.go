package attention

import (
	"fmt"
	"math"

	"github.com/perceiverkit/perceiver/internal/par"
	"github.com/perceiverkit/perceiver/internal/sgemm"
	"github.com/perceiverkit/perceiver/internal/vecmath"
)

// ShapeError is the panic value of a kernel or map function called with buffers that do not match
// its dimensions: a programming error, never a data error.
type ShapeError string

func (e ShapeError) Error() string { return string(e) }

func need(name string, buf []float32, n int) {
	if len(buf) < n {
		panic(ShapeError(fmt.Sprintf("attention: %s has %d values, need %d", name, len(buf), n)))
	}
}

// rowGrain keeps row-parallel loops on one goroutine when rows are short.
func rowGrain(cols int) int { return max(1, 16384/max(cols, 1)) }

// MultiHead computes, for each head j, ctx_j = softmax(scale·q_j·k_jᵀ)·v_j, the scaled dot-product
// attention of Hugging Face's PerceiverSelfAttention (without masks or dropout).
//
// q is [nq, heads·dqk], k is [nk, heads·dqk], v is [nk, heads·dv], ctx is [nq, heads·dv]. probs
// receives the probabilities [heads, nq, nk]; it is also the scratch space of the scores, so it is
// always required.
func MultiHead(ctx, probs, q, k, v []float32, nq, nk, heads, dqk, dv int, scale float32) {
	MultiHeadPrec(sgemm.Float32, ctx, probs, q, k, v, nq, nk, heads, dqk, dv, scale)
}

// MultiHeadPrec is MultiHead with both matrix products (scores and context) in the given
// precision (sgemm.BFloat16: operands rounded to bfloat16, float32 sums); the softmax is float32.
func MultiHeadPrec(prec sgemm.Precision, ctx, probs, q, k, v []float32, nq, nk, heads, dqk, dv int, scale float32) {
	need("ctx", ctx, nq*heads*dv)
	need("probs", probs, heads*nq*nk)
	need("q", q, nq*heads*dqk)
	need("k", k, nk*heads*dqk)
	need("v", v, nk*heads*dv)
	ldqk, ldv := heads*dqk, heads*dv
	gemm, gemmSerial := sgemm.Gemm, sgemm.GemmSerial
	if prec == sgemm.BFloat16 {
		gemm, gemmSerial = sgemm.GemmBF16, sgemm.GemmSerialBF16
	}
	if heads > 1 && (sgemm.SerialScales || prec == sgemm.BFloat16) {
		// Heads are independent: one goroutine per group of heads, each product on its own core.
		// The per-head products (e.g. 512×512×128) are too small to split well inside sgemm.
		par.For(heads, 1, func(lo, hi int) {
			for j := lo; j < hi; j++ {
				p := probs[j*nq*nk : (j+1)*nq*nk]
				gemmSerial(false, true, nq, nk, dqk, scale, q[j*dqk:], ldqk, k[j*dqk:], ldqk, 0, p, nk)
				for i := 0; i < nq; i++ {
					softmax(p[i*nk : (i+1)*nk])
				}
				gemmSerial(false, false, nq, dv, nk, 1, p, nk, v[j*dv:], ldv, 0, ctx[j*dv:], ldv)
			}
		})
		return
	}
	// One product at a time, each spread over the cores by the matrix library.
	for j := 0; j < heads; j++ {
		p := probs[j*nq*nk : (j+1)*nq*nk]
		gemm(false, true, nq, nk, dqk, scale, q[j*dqk:], ldqk, k[j*dqk:], ldqk, 0, p, nk)
		SoftmaxRows(p, nq, nk, nk)
		gemm(false, false, nq, dv, nk, 1, p, nk, v[j*dv:], ldv, 0, ctx[j*dv:], ldv)
	}
}

// SoftmaxRows replaces each of the rows rows of x (cols values each, rows ld apart) by its softmax.
func SoftmaxRows(x []float32, rows, cols, ld int) {
	if rows == 0 || cols == 0 {
		return
	}
	need("x", x, (rows-1)*ld+cols)
	par.For(rows, rowGrain(cols), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			softmax(x[i*ld : i*ld+cols])
		}
	})
}

func softmax(row []float32) {
	sum := vecmath.ExpShiftSum(row, row, vecmath.Max(row))
	vecmath.Scale(row, float32(1/sum))
}

// Online accumulates multi-head attention over keys and values that arrive in chunks, keeping a
// running maximum and sum per query row (the "online softmax"), so that the full score matrix is
// never held: for the encoder at 224² that matrix is 512×50,176 floats per head. The result equals
// MultiHead's up to float32 rounding.
type Online struct {
	nq, heads, dqk, dv, maxChunk int
	scale                        float32
	max, sum                     []float32 // [heads, nq]
	acc                          []float32 // [nq, heads·dv]
	scores                       []float32 // [nq, maxChunk]
}

// NewOnline prepares an accumulator for nq queries, heads heads of widths dqk and dv, and chunks of
// at most maxChunk keys.
func NewOnline(nq, heads, dqk, dv, maxChunk int, scale float32) *Online {
	o := &Online{
		nq: nq, heads: heads, dqk: dqk, dv: dv, maxChunk: maxChunk, scale: scale,
		max:    make([]float32, heads*nq),
		sum:    make([]float32, heads*nq),
		acc:    make([]float32, nq*heads*dv),
		scores: make([]float32, nq*maxChunk),
	}
	o.Reset()
	return o
}

// Reset forgets every chunk added so far.
func (o *Online) Reset() {
	for i := range o.max {
		o.max[i] = float32(math.Inf(-1))
		o.sum[i] = 0
	}
	clear(o.acc)
}

// Add takes nk more keys k [nk, heads·dqk] and values v [nk, heads·dv] for the queries q
// [nq, heads·dqk].
//
// If keep is not nil, the chunk's raw scaled scores are also copied into it, laid out
// [heads, nq, ldKeep] (so keep usually points at the chunk's first column of a whole score map);
// Probabilities turns them into the attention map once every chunk is in. The attention output is
// the same, bit for bit, whether scores are kept or not.
func (o *Online) Add(q, k, v []float32, nk int, keep []float32, ldKeep int) {
	if nk > o.maxChunk {
		panic(ShapeError(fmt.Sprintf("attention: chunk of %d keys exceeds the accumulator's %d", nk, o.maxChunk)))
	}
	if nk == 0 {
		return
	}
	need("q", q, o.nq*o.heads*o.dqk)
	need("k", k, nk*o.heads*o.dqk)
	need("v", v, nk*o.heads*o.dv)
	ldqk, ldv := o.heads*o.dqk, o.heads*o.dv
	s := o.scores[:o.nq*nk]
	for j := 0; j < o.heads; j++ {
		sgemm.Gemm(false, true, o.nq, nk, o.dqk, o.scale, q[j*o.dqk:], ldqk, k[j*o.dqk:], ldqk, 0, s, nk)
		if keep != nil {
			need("keep", keep, ((j+1)*o.nq-1)*ldKeep+nk)
			for i := 0; i < o.nq; i++ {
				copy(keep[(j*o.nq+i)*ldKeep:(j*o.nq+i)*ldKeep+nk], s[i*nk:(i+1)*nk])
			}
		}
		mx, sm := o.max[j*o.nq:(j+1)*o.nq], o.sum[j*o.nq:(j+1)*o.nq]
		par.For(o.nq, rowGrain(nk), func(lo, hi int) {
			for i := lo; i < hi; i++ {
				row := s[i*nk : (i+1)*nk]
				m := max(mx[i], vecmath.Max(row)) // both are -Inf or a number, never NaN
				// Rescale what was accumulated under the old maximum.
				if m > mx[i] {
					f := Exp(mx[i] - m)
					sm[i] *= f
					vecmath.Scale(o.acc[i*ldv+j*o.dv:i*ldv+(j+1)*o.dv], f)
					mx[i] = m
				}
				sm[i] += float32(vecmath.ExpShiftSum(row, row, m))
			}
		})
		sgemm.Gemm(false, false, o.nq, o.dv, nk, 1, s, nk, v[j*o.dv:], ldv, 1, o.acc[j*o.dv:], ldv)
	}
}

// Probabilities turns the raw scores kept by Add into probabilities, in place: scores is
// [heads, nq, nk] with every chunk's columns filled. Each row is normalised by its own maximum and
// sum, recomputed here in full precision, so the map is the exact softmax of the scores.
func (o *Online) Probabilities(scores []float32, nk int) {
	need("scores", scores, o.heads*o.nq*nk)
	SoftmaxRows(scores, o.heads*o.nq, nk, nk)
}

// Finish writes the attention output [nq, heads·dv] into ctx.
func (o *Online) Finish(ctx []float32) {
	ldv := o.heads * o.dv
	need("ctx", ctx, o.nq*ldv)
	for i := 0; i < o.nq; i++ {
		for j := 0; j < o.heads; j++ {
			inv := 1 / o.sum[j*o.nq+i]
			src := o.acc[i*ldv+j*o.dv : i*ldv+(j+1)*o.dv]
			dst := ctx[i*ldv+j*o.dv : i*ldv+(j+1)*o.dv]
			for c, x := range src {
				dst[c] = x * inv
			}
		}
	}
}

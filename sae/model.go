package sae

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/perceiverkit/perceiver/core/weights"
	"github.com/perceiverkit/perceiver/internal/par"
	"github.com/perceiverkit/perceiver/internal/sgemm"
)

// SAE is a TopK sparse autoencoder on d-dimensional inputs with M dictionary entries.
type SAE struct {
	D, M, K int
	Enc     []float32 // W_enc [M, d]
	BEnc    []float32 // [M]
	Dict    []float32 // W_decᵀ [M, d]: row j is decoder column j (unit norm)
	BDec    []float32 // [d]
}

// ShapeError is the panic value of a call whose buffers do not match the model.
type ShapeError string

func (e ShapeError) Error() string { return "sae: " + string(e) }

// NewRandom returns an autoencoder initialised as the recipe says, except b_dec (zero here; the
// trainer sets it from the data): decoder columns uniformly random unit directions, W_enc = W_decᵀ,
// b_enc = 0.
func NewRandom(d, m, k int, seed uint64) *SAE {
	if d < 1 || m < 1 || k < 1 || k > m {
		panic(ShapeError(fmt.Sprintf("NewRandom: d=%d M=%d k=%d", d, m, k)))
	}
	s := &SAE{D: d, M: m, K: k, Enc: make([]float32, m*d), BEnc: make([]float32, m), Dict: make([]float32, m*d), BDec: make([]float32, d)}
	rng := rand.New(rand.NewPCG(seed, streamInit))
	for i := range s.Dict {
		s.Dict[i] = float32(rng.NormFloat64())
	}
	s.normalize()
	copy(s.Enc, s.Dict)
	return s
}

// Random streams: one per use of the seed.
const (
	streamInit  = 1
	streamSplit = 2
	streamEpoch = 1000 // + epoch
)

// normalize scales every decoder column to unit norm (a zero column stays zero).
func (s *SAE) normalize() {
	d := s.D
	par.For(s.M, 64, func(lo, hi int) {
		for j := lo; j < hi; j++ {
			w := s.Dict[j*d : (j+1)*d]
			var n float64
			for _, v := range w {
				n += float64(v) * float64(v)
			}
			if n == 0 {
				continue
			}
			inv := float32(1 / math.Sqrt(n))
			for i := range w {
				w[i] *= inv
			}
		}
	})
}

// Code is the sparse code of one row: K entries in descending pre-activation order (ties: lower
// index first); Values are max(pre, 0).
type Code struct {
	Indices []int32
	Values  []float32
}

// preActivations writes pre [n, M] = (x − b_dec) W_encᵀ + b_enc for rows x [n, d]; xc [n, d] is
// scratch that receives x − b_dec.
func (s *SAE) preActivations(pre, xc, x []float32, n int) {
	d, m := s.D, s.M
	for r := 0; r < n; r++ {
		xr, cr := x[r*d:(r+1)*d], xc[r*d:(r+1)*d]
		for i := range cr {
			cr[i] = xr[i] - s.BDec[i]
		}
		copy(pre[r*m:(r+1)*m], s.BEnc)
	}
	sgemm.Gemm(false, true, n, m, d, 1, xc, d, s.Enc, d, 1, pre, m)
}

// topK writes the k largest entries of p into idx and val in descending order (ties: lower
// index first); val holds the raw values (ReLU is the caller's).
func topK(idx []int32, val []float32, p []float32, k int) {
	n := 0
	for j, v := range p {
		if n == k && !(v > val[k-1]) {
			continue // not larger than the smallest kept: a tie keeps the earlier index
		}
		// insertion into the sorted list, after every equal value (lower index first)
		i := n
		if n < k {
			n++
		} else {
			i = k - 1
		}
		for i > 0 && v > val[i-1] {
			val[i], idx[i] = val[i-1], idx[i-1]
			i--
		}
		val[i], idx[i] = v, int32(j)
	}
	for ; n < k; n++ { // fewer entries than k: cannot happen when k <= M
		val[n], idx[n] = 0, -1
	}
}

// Encode writes the codes of rows x [n, d] (K entries per row) into idx and val [n, K].
func (s *SAE) Encode(idx []int32, val []float32, x []float32, n int) {
	d, m, k := s.D, s.M, s.K
	if len(x) < n*d || len(idx) < n*k || len(val) < n*k {
		panic(ShapeError(fmt.Sprintf("Encode: %d rows of %d need x %d, codes %d; have %d, %d, %d", n, d, n*d, n*k, len(x), len(idx), len(val))))
	}
	const chunk = 256
	for lo := 0; lo < n; lo += chunk {
		hi := min(n, lo+chunk)
		rows := hi - lo
		pre := make([]float32, rows*m)
		xc := make([]float32, rows*d)
		s.preActivations(pre, xc, x[lo*d:hi*d], rows)
		par.For(rows, 16, func(a, b int) {
			for r := a; r < b; r++ {
				iv, vv := idx[(lo+r)*k:(lo+r+1)*k], val[(lo+r)*k:(lo+r+1)*k]
				topK(iv, vv, pre[r*m:(r+1)*m], k)
				for i := range vv {
					vv[i] = max(vv[i], 0)
				}
			}
		})
	}
}

// Decode writes x̂ [n, d] = W_dec z + b_dec for codes idx, val [n, K].
func (s *SAE) Decode(xhat []float32, idx []int32, val []float32, n int) {
	d, k := s.D, s.K
	par.For(n, 64, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			out := xhat[r*d : (r+1)*d]
			copy(out, s.BDec)
			for e := 0; e < k; e++ {
				v := val[r*k+e]
				if v == 0 {
					continue
				}
				axpy(out, v, s.Dict[int(idx[r*k+e])*d:])
			}
		}
	})
}

func axpy(y []float32, a float32, x []float32) {
	x = x[:len(y)]
	for i := range y {
		y[i] += a * x[i]
	}
}

func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s float32
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// Save writes the weights as safetensors: W_enc [M, d], b_enc [M], W_dec [d, M], b_dec [d].
func (s *SAE) Save(path string, metadata map[string]string) error {
	wdec := make([]float32, s.D*s.M)
	for j := 0; j < s.M; j++ {
		for i := 0; i < s.D; i++ {
			wdec[i*s.M+j] = s.Dict[j*s.D+i]
		}
	}
	return weights.WriteSafetensors(path, []*weights.Tensor{
		{Name: "W_enc", Shape: []int{s.M, s.D}, Data: s.Enc},
		{Name: "b_enc", Shape: []int{s.M}, Data: s.BEnc},
		{Name: "W_dec", Shape: []int{s.D, s.M}, Data: wdec},
		{Name: "b_dec", Shape: []int{s.D}, Data: s.BDec},
	}, metadata)
}

// Load reads weights written by Save; k is the code size (from report.json).
func Load(path string, k int) (*SAE, error) {
	f, err := weights.OpenSafetensors(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	we, err := f.Get("W_enc")
	if err != nil {
		return nil, err
	}
	if len(we.Shape) != 2 {
		return nil, fmt.Errorf("%s: W_enc has shape %v, want [M, d]", path, we.Shape)
	}
	m, d := we.Shape[0], we.Shape[1]
	if k < 1 || k > m {
		return nil, fmt.Errorf("%s: k = %d, want 1…%d", path, k, m)
	}
	be, err := f.Get("b_enc", m)
	if err != nil {
		return nil, err
	}
	wd, err := f.Get("W_dec", d, m)
	if err != nil {
		return nil, err
	}
	bd, err := f.Get("b_dec", d)
	if err != nil {
		return nil, err
	}
	s := &SAE{D: d, M: m, K: k, Enc: append([]float32(nil), we.Data...), BEnc: append([]float32(nil), be.Data...),
		Dict: make([]float32, m*d), BDec: append([]float32(nil), bd.Data...)}
	for i := 0; i < d; i++ {
		for j := 0; j < m; j++ {
			s.Dict[j*d+i] = wd.Data[i*m+j]
		}
	}
	for _, t := range [][]float32{s.Enc, s.BEnc, s.Dict, s.BDec} {
		for _, v := range t {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("%s: weights hold NaN or Inf", path)
			}
		}
	}
	return s, nil
}

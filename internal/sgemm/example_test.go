package sgemm_test

import (
	"fmt"

	"github.com/perceiverkit/perceiver/internal/sgemm"
)

// A Linear layer y = x·Wᵀ with PyTorch's [out, in] weight layout: transB = true.
func ExampleGemm() {
	x := []float32{ // 2 positions × 3 channels
		1, 2, 3,
		4, 5, 6,
	}
	w := []float32{ // [out=2, in=3]
		1, 0, -1,
		0.5, 0.5, 0.5,
	}
	y := make([]float32, 2*2)
	sgemm.Gemm(false, true, 2, 2, 3, 1, x, 3, w, 3, 0, y, 2)
	fmt.Println(y)
	// Output: [-2 3 -2 7.5]
}

// Strided operands: the second head (columns 2…3) of a 2×4 query matrix times
// the same head of a key matrix, Q_h·K_hᵀ, without copying the heads out.
func ExampleGemm_strided() {
	q := []float32{
		9, 9, 1, 2,
		9, 9, 3, 4,
	}
	k := []float32{
		9, 9, 1, 0,
		9, 9, 0, 1,
	}
	scores := make([]float32, 2*2)
	sgemm.Gemm(false, true, 2, 2, 2, 1, q[2:], 4, k[2:], 4, 0, scores, 2)
	fmt.Println(scores)
	// Output: [1 2 3 4]
}

func ExampleKernel() {
	switch sgemm.Kernel() {
	case "avx512", "avx2", "generic", "openblas":
		fmt.Println("known kernel")
	}
	// Output: known kernel
}

func ExampleSetThreads() {
	sgemm.SetThreads(1) // e.g. when the caller already runs one Gemm per core
	fmt.Println(sgemm.Threads())
	sgemm.SetThreads(0) // back to runtime.GOMAXPROCS
	// Output: 1
}

// Mismatched dimensions are programmer errors: Gemm panics with a DimensionError.
func ExampleDimensionError() {
	a := make([]float32, 6) // 2×3
	c := make([]float32, 4)
	err := func() (err error) {
		defer func() {
			if de, ok := recover().(sgemm.DimensionError); ok {
				err = de
			}
		}()
		sgemm.Gemm(false, false, 2, 2, 4, 1, a, 3, a, 2, 0, c, 2) // k = 4 but A has 3 columns
		return nil
	}()
	fmt.Println(err)
	// Output: sgemm: lda=3 is less than the 4 columns of A
}

// A weight matrix stored [out, in] is packed once and reused for every input.
func ExampleGemmPacked() {
	w := []float32{ // [2 out, 3 in]
		1, 0, -1,
		2, 1, 0,
	}
	pb := sgemm.PackB(true, 3, 2, w, 3)
	x := []float32{1, 2, 3} // one row, 3 inputs
	y := make([]float32, 2)
	sgemm.GemmPacked(1, 1, x, 3, false, pb, nil, 0, y, 2)
	fmt.Println(y)
	// Output: [-2 4]
}

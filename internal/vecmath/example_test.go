package vecmath_test

import (
	"fmt"
	"math"

	"github.com/perceiverkit/perceiver/internal/vecmath"
)

// A softmax in place: subtract the maximum, exponentiate and sum, normalise.
func ExampleExpShiftSum() {
	row := []float32{1, 2, 3, float32(math.Inf(-1))} // -Inf is a masked score
	sum := vecmath.ExpShiftSum(row, row, vecmath.Max(row))
	vecmath.Scale(row, float32(1/sum))
	fmt.Printf("%.4f\n", row)
	// Output: [0.0900 0.2447 0.6652 0.0000]
}

func ExampleMax() {
	fmt.Println(vecmath.Max([]float32{3, float32(math.NaN()), 7, -1}), vecmath.Max(nil))
	// Output: 7 -Inf
}

func ExampleScale() {
	x := []float32{1, -2, 4}
	vecmath.Scale(x, 0.5)
	fmt.Println(x)
	// Output: [0.5 -1 2]
}

func ExampleGELU() {
	x := []float32{-3, -1, 0, 1, 3}
	vecmath.GELU(x, x)
	fmt.Printf("%.6f\n", x)
	// Output: [-0.004050 -0.158655 0.000000 0.841345 2.995950]
}

func ExampleLayerNormRow() {
	x := []float32{1, 2, 3, 4}
	w := []float32{1, 1, 2, 1}
	b := []float32{0, 0, 0, 10}
	out := make([]float32, 4)
	vecmath.LayerNormRow(out, x, w, b, 1e-5)
	fmt.Printf("%.4f\n", out)
	// Output: [-1.3416 -0.4472 0.8944 11.3416]
}

func ExampleImplementation() {
	switch vecmath.Implementation() {
	case "avx512", "avx2", "go":
		fmt.Println("known implementation")
	}
	// Output: known implementation
}

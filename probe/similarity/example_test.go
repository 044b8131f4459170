package similarity_test

import (
	"fmt"
	"log"

	"github.com/perceiverkit/perceiver/probe/similarity"
)

// Compare three representations of the same 6 rows with each other: b is a rotated and scaled
// copy of a (CKA 1), c is unrelated (0.2991 by the formula in plain Python).
func ExampleCompare() {
	a := []float32{1, 0, 0, 2, 3, 1, -1, 4, 2, 2, 0, -3}
	b := make([]float32, len(a))
	for i := 0; i < len(a); i += 2 { // rotate each row by 90° and scale by 3
		b[i], b[i+1] = -3*a[i+1], 3*a[i]
	}
	c := []float32{5, 1, 3, 3, 0, 2, 4, 4, 1, 0, 2, 5}
	reps := []similarity.Representation{{Name: "a", Data: a, Dim: 2}, {Name: "b", Data: b, Dim: 2}, {Name: "c", Data: c, Dim: 2}}
	res, err := similarity.Compare(reps, nil, similarity.Options{Method: similarity.CKA})
	if err != nil {
		log.Fatal(err)
	}
	for i, row := range res.Matrix {
		fmt.Printf("%s %.3f\n", res.Columns[i], row)
	}
	// Output:
	// a [1.000 1.000 0.299]
	// b [1.000 1.000 0.299]
	// c [0.299 0.299 1.000]
}

// Mutual k-NN alignment of two representations of 8 rows with K = 2: b keeps a's neighbourhoods
// (a scaled copy): every row shares all its neighbours.
func ExampleCompare_mutualKNN() {
	a := []float32{0, 1, 0.1, 1, 0.2, 1, 1, 0, 1, 0.1, 1, 0.2, -1, 0, -1, 0.1}
	b := make([]float32, len(a))
	for i, v := range a {
		b[i] = 5 * v
	}
	res, err := similarity.Compare(
		[]similarity.Representation{{Name: "a", Data: a, Dim: 2}},
		[]similarity.Representation{{Name: "b", Data: b, Dim: 2}},
		similarity.Options{Method: similarity.MutualKNN, KNNK: 2})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%.2f\n", res.Matrix[0][0])
	// Output: 1.00
}

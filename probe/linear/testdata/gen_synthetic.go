//go:build ignore

// gen_synthetic writes the synthetic parity set in testdata/sklearn (npy files read by both the
// Go tests and sklearn_compare.py): 5 imbalanced Gaussian classes in 20 features, 10 of them
// informative, with per-feature offsets and scales and one constant feature.
//
//	go run ./testdata/gen_synthetic.go   (from probe/linear)
package main

import (
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/perceiverkit/perceiver/probe/linear"
)

func main() {
	const k, d, informative = 5, 20, 10
	prior := []float64{0.35, 0.25, 0.2, 0.12, 0.08}
	r := rand.New(rand.NewPCG(20261126, 5))
	means := make([][]float64, k)
	for c := range means {
		means[c] = make([]float64, informative)
		for j := range means[c] {
			means[c][j] = 0.9 * r.NormFloat64()
		}
	}
	gen := func(n int) ([]float32, []int64) {
		x := make([]float32, n*d)
		y := make([]int64, n)
		for i := range n {
			u, c := r.Float64(), 0
			for c < k-1 && u >= prior[c] {
				u -= prior[c]
				c++
			}
			y[i] = int64(c)
			for j := range d {
				v := r.NormFloat64()
				if j < informative {
					v += means[c][j]
				}
				v = v*float64(1+j%4) + float64(3*j) // unequal scales and offsets
				if j == d-1 {
					v = 7 // constant feature: std 0
				}
				x[i*d+j] = float32(v)
			}
		}
		return x, y
	}
	dir := filepath.Join("testdata", "sklearn")
	write := func(name string, f func(*os.File) error) {
		fh, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			log.Fatal(err)
		}
		if err := f(fh); err != nil {
			log.Fatal(err)
		}
		if err := fh.Close(); err != nil {
			log.Fatal(err)
		}
	}
	for _, part := range []struct {
		name string
		n    int
	}{{"train", 2000}, {"test", 1000}} {
		x, y := gen(part.n)
		write(part.name+"_x.npy", func(f *os.File) error { return linear.WriteNPY(f, x, part.n, d) })
		write(part.name+"_y.npy", func(f *os.File) error { return linear.WriteNPYInt64(f, y, part.n) })
	}
}

package sgemm

import (
	"fmt"
	"testing"
)

// TestPackPanels checks the packed layout element by element against its
// definition (doc comment of packPanels), for both source orientations,
// panel widths of the kernels, partial panels and k not a multiple of 8 (the
// AVX transpose's block).
func TestPackPanels(t *testing.T) {
	const ld = 53
	x := make([]float32, 60*ld)
	for i := range x {
		x[i] = float32(i + 1)
	}
	for _, w := range []int{4, 6, 14, 16, 32} {
		for _, kContiguous := range []bool{true, false} {
			for _, rn := range []int{1, 7, 8, 9, 13, 14, 15, 31, 33, 45} {
				for _, kc := range []int{1, 7, 8, 16, 21, 40} {
					r0, p0 := 3, 5
					panels := (rn + w - 1) / w
					d := make([]float32, panels*w*kc+1)
					for i := range d {
						d[i] = -1
					}
					packPanels(d, x, ld, kContiguous, r0, rn, p0, kc, w)
					name := fmt.Sprintf("w=%d kContiguous=%v rn=%d kc=%d", w, kContiguous, rn, kc)
					for q := 0; q < panels; q++ {
						for p := 0; p < kc; p++ {
							for i := 0; i < w; i++ {
								got := d[q*w*kc+p*w+i]
								var want float32
								if r := q*w + i; r < rn {
									if kContiguous {
										want = x[(r0+r)*ld+p0+p]
									} else {
										want = x[(p0+p)*ld+r0+r]
									}
								}
								if got != want {
									t.Fatalf("%s: panel %d, k %d, row %d = %g, want %g", name, q, p, i, got, want)
								}
							}
						}
					}
					if d[len(d)-1] != -1 {
						t.Fatalf("%s: wrote past the packed panels", name)
					}
				}
			}
		}
	}
}

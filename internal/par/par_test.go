package par

import (
	"sync"
	"testing"
)

// TestForCoversEveryIndexOnce checks that the ranges partition [0, n) for sizes around the grain.
func TestForCoversEveryIndexOnce(t *testing.T) {
	for _, n := range []int{0, 1, 2, 7, 100, 1001} {
		for _, grain := range []int{0, 1, 3, 64, 5000} {
			var mu sync.Mutex
			seen := make([]int, n)
			For(n, grain, func(lo, hi int) {
				mu.Lock()
				defer mu.Unlock()
				for i := lo; i < hi; i++ {
					seen[i]++
				}
			})
			for i, c := range seen {
				if c != 1 {
					t.Fatalf("n=%d grain=%d: index %d visited %d times", n, grain, i, c)
				}
			}
		}
	}
}

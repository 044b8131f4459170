package sgemm

import (
	"sync"
	"time"
)

// Peak measures the float32 FMA throughput, in GFLOPS, that the kernel in use (Kernel) can reach
// on threads cores at once: independent fused multiply-adds with no memory traffic, run for about
// d. It is the ceiling against which the matrix kernels' and the model's GFLOPS are read. It
// returns 0 for kernels without such a loop (generic, openblas).
func Peak(threads int, d time.Duration) float64 {
	loop, flops := peakLoop(Kernel())
	if loop == nil || threads < 1 {
		return 0
	}
	const iters = 1 << 16
	loop(iters) // wake the vector units: some CPUs lower their clock for the first wide FMAs
	best := 0.0
	for end := time.Now().Add(d); time.Now().Before(end); {
		start := time.Now()
		var wg sync.WaitGroup
		for range threads {
			wg.Add(1)
			go func() {
				defer wg.Done()
				loop(iters)
			}()
		}
		wg.Wait()
		best = max(best, flops*iters*float64(threads)/time.Since(start).Seconds()/1e9)
	}
	return best
}

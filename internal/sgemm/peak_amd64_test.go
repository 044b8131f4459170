//go:build amd64 && !purego

package sgemm

import (
	"fmt"
	"sync"
	"testing"

	"golang.org/x/sys/cpu"
)

// BenchmarkFMAPeak measures the machine's float32 FMA throughput (AVX-512, independent chains, no
// memory traffic) on one core and on Threads() cores at once: the ceiling for every GFLOPS figure
// of the kernels and of the model. On the 2-core Zen 4 development machine: 117 per core, 234 in
// all, so the full-size model (406 GFLOPs per 224² image) cannot run faster than 1.73 s there.
func BenchmarkFMAPeak(b *testing.B) {
	if !cpu.X86.HasAVX512F {
		b.Skip("no AVX-512")
	}
	const iters = 1 << 20
	for _, th := range []int{1, Threads()} {
		b.Run(fmt.Sprintf("threads=%d", th), func(b *testing.B) {
			for b.Loop() {
				var wg sync.WaitGroup
				for range th {
					wg.Add(1)
					go func() {
						defer wg.Done()
						fmaPeakAVX512(iters)
					}()
				}
				wg.Wait()
			}
			b.ReportMetric(512*iters*float64(th)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
		})
	}
}

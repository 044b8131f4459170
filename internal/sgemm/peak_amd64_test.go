//go:build amd64 && !purego

package sgemm

import (
	"fmt"
	"sync"
	"testing"

	"golang.org/x/sys/cpu"
)

// BenchmarkFMAPeak measures the machine's float32 FMA throughput (independent chains, no memory
// traffic) with each instruction set the CPU has, AVX-512 and AVX2, on one core and on Threads()
// cores at once: the ceiling for every GFLOPS figure of the kernels and of the model. On the 2-core
// Zen 4 development machine (AVX-512): 117 per core, 234 in all, so the full-size model (406 GFLOPs
// per 224² image) cannot run faster than 1.73 s there.
func BenchmarkFMAPeak(b *testing.B) {
	sets := []struct {
		name  string
		has   bool
		loop  func(int)
		flops float64
	}{
		{"avx512", cpu.X86.HasAVX512F, fmaPeakAVX512, 512},
		{"avx2", cpu.X86.HasAVX2 && cpu.X86.HasFMA, fmaPeakAVX2, 192},
	}
	const iters = 1 << 20
	for _, set := range sets {
		for _, th := range []int{1, Threads()} {
			b.Run(fmt.Sprintf("%s/threads=%d", set.name, th), func(b *testing.B) {
				if !set.has {
					b.Skip("the CPU has no " + set.name)
				}
				for b.Loop() {
					var wg sync.WaitGroup
					for range th {
						wg.Add(1)
						go func() {
							defer wg.Done()
							set.loop(iters)
						}()
					}
					wg.Wait()
				}
				b.ReportMetric(set.flops*iters*float64(th)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
			})
		}
	}
}

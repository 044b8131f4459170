package sgemm

import (
	"runtime"
	"syscall"
	"testing"
	"time"
)

// threadCPUTime is the CPU time of the calling OS thread (Linux RUSAGE_THREAD).
func threadCPUTime() time.Duration {
	var ru syscall.Rusage
	const rusageThread = 1
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSingleThreadCPU runs Gemm with SetThreads(1) (so also OpenBLAS
// single-threaded under -tags openblas) on a goroutine locked to its thread,
// and reports GFLOPS per second of that thread's CPU time, which stays
// meaningful when other processes share the machine (wall-clock GFLOPS do not).
func BenchmarkSingleThreadCPU(b *testing.B) {
	SetThreads(1)
	defer SetThreads(0)
	for _, s := range benchShapes {
		b.Run(s.name, func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			a, lda, bm, ldb, c, ldc := benchOperands(s.m, s.n, s.k, s.transA, s.transB, s.lda, s.ldb, s.ldc)
			Gemm(s.transA, s.transB, s.m, s.n, s.k, 1, a, lda, bm, ldb, 0, c, ldc)
			calls := 0
			t0 := threadCPUTime()
			for b.Loop() {
				Gemm(s.transA, s.transB, s.m, s.n, s.k, 1, a, lda, bm, ldb, 0, c, ldc)
				calls++
			}
			cpu := (threadCPUTime() - t0).Seconds()
			b.ReportMetric(2*float64(s.m)*float64(s.n)*float64(s.k)*float64(calls)/cpu/1e9, "cpuGFLOPS")
		})
	}
}

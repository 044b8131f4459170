package sgemm

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestPeak: the FMA ceiling of the kernel in use is measured, and positive, wherever the kernel
// has an FMA loop (AVX-512, AVX2); the generic kernel and OpenBLAS report 0.
func TestPeak(t *testing.T) {
	p := Peak(1, 20*time.Millisecond)
	switch Kernel() {
	case "avx512", "avx2":
		if !(p > 1) {
			t.Errorf("%s peak %.3g GFLOPS", Kernel(), p)
		}
	default:
		if p != 0 {
			t.Errorf("%s peak %.3g GFLOPS, want 0", Kernel(), p)
		}
	}
}

// TestKernelFromEnvironment: PERCEIVERKIT_KERNEL picks a kernel the CPU runs other than the best
// (to measure the AVX2 path on an AVX-512 machine); a name the CPU cannot run leaves the best.
func TestKernelFromEnvironment(t *testing.T) {
	if os.Getenv("SGEMM_PRINT_KERNEL") == "1" {
		os.Stdout.WriteString("kernel=" + Kernel() + "\n")
		return
	}
	var names []string
	for _, k := range availableKernels() {
		names = append(names, k.name)
	}
	for _, want := range append(names, "no-such-kernel") {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKernelFromEnvironment$")
		cmd.Env = append(os.Environ(), "SGEMM_PRINT_KERNEL=1", "PERCEIVERKIT_KERNEL="+want)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		got := want
		if !slices.Contains(names, want) {
			got = names[0]
		}
		if Kernel() == "openblas" {
			got = "openblas"
		}
		if !strings.Contains(string(out), "kernel="+got+"\n") {
			t.Errorf("PERCEIVERKIT_KERNEL=%s: %s, want kernel=%s", want, out, got)
		}
	}
}

// TestCPUVendor: the vendor string that chooses the K blocking (defaultKC) is the one Linux
// reports in /proc/cpuinfo, where there is one.
func TestCPUVendor(t *testing.T) {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil || cpuVendor() == "" {
		t.Skip("no /proc/cpuinfo or no CPUID here")
	}
	for _, line := range strings.Split(string(data), "\n") {
		if name, value, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "vendor_id" {
			if got, want := cpuVendor(), strings.TrimSpace(value); got != want {
				t.Errorf("cpuVendor() = %q, /proc/cpuinfo says %q", got, want)
			}
			return
		}
	}
	t.Skip("/proc/cpuinfo names no vendor_id")
}

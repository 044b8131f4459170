//go:build !amd64 || purego

package sgemm

func peakLoop(string) (func(int), float64) { return nil, 0 }

func cpuVendor() string { return "" }

// Package flagcheck is the one flag/size validator of the toolkit: every size a command-line flag
// sets is checked against an estimate of the memory it takes before anything is allocated, and
// every count that only sets work (permutations, bootstrap draws, timing runs) against a ceiling,
// so that a huge value ends in a one-line error naming the flag and the bytes instead of Go's
// "fatal error: out of memory" with a goroutine dump, or a run that never ends.
//
// Conventions:
//   - Estimates are float64 products of the flag's value and the bytes per unit (Bytes, Mul), so
//     that no product overflows; an estimate above Limit() is refused.
//   - Limit() is the memory available when the command starts (the smaller of /proc/meminfo's
//     MemAvailable and the cgroup's memory.max), or PROBE_MEMORY_LIMIT (bytes, or with a K/M/G/T
//     suffix) when set.
//   - Errors read "--flag VALUE: needs 18.8 GB (18800000000 bytes) at once, more than the 24.0 GB
//     of memory here (…)": one line, the flag, its value and the bytes.
//   - A command checks a size as soon as the shapes it depends on are known (often after loading
//     the model and the image) and before the allocation; counts are checked with the flags.
package flagcheck

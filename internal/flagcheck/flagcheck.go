package flagcheck

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
)

// ErrTooLarge marks a refused flag. Test with errors.Is.
var ErrTooLarge = errors.New("too large")

// EnvLimit overrides the memory limit (bytes, or with a K, M, G or T suffix).
const EnvLimit = "PROBE_MEMORY_LIMIT"

var (
	limitOnce sync.Once
	limit     int64
	limitWhy  string
)

// Limit returns the bytes a command may hold at once and where that figure comes from.
func Limit() (int64, string) {
	limitOnce.Do(func() { limit, limitWhy = findLimit(os.Getenv(EnvLimit)) })
	return limit, limitWhy
}

func findLimit(env string) (int64, string) {
	if env != "" {
		if n, err := ParseBytes(env); err == nil && n > 0 {
			return n, EnvLimit
		}
	}
	best, why := int64(math.MaxInt64), "no limit found"
	if n := meminfo("MemAvailable:"); n > 0 {
		best, why = n, "memory available now"
	} else if n := meminfo("MemTotal:"); n > 0 {
		best, why = n, "the machine's memory"
	}
	for _, p := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 && n < best {
			best, why = n, "the container's memory limit"
		}
	}
	return best, why
}

// meminfo reads one field of /proc/meminfo, in bytes (0 when absent).
func meminfo(field string) int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			fields := strings.Fields(rest)
			if len(fields) > 0 {
				if kb, err := strconv.ParseInt(fields[0], 10, 64); err == nil {
					return kb << 10
				}
			}
		}
	}
	return 0
}

// ParseBytes reads "1073741824", "512M", "2G" or "1.5GB".
func ParseBytes(s string) (int64, error) {
	s = strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B")
	mult := 1.0
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult != 1 {
			s = s[:n-1]
		}
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || !(v >= 0) || v*mult > math.MaxInt64/2 {
		return 0, fmt.Errorf("%q is not a byte count (e.g. 512M, 2G)", s)
	}
	return int64(v * mult), nil
}

// Mul multiplies sizes in float64, so that products of huge flags never overflow.
func Mul(xs ...float64) float64 {
	p := 1.0
	for _, x := range xs {
		p *= x
	}
	return p
}

// Bytes refuses flag (shown with its value) when the allocation it sets, estimated at bytes, is
// more than Limit().
func Bytes(flag string, value any, bytes float64) error {
	lim, why := Limit()
	if bytes <= float64(lim) && !math.IsNaN(bytes) {
		return nil
	}
	return fmt.Errorf("%s %v: needs %s (%.0f bytes) at once, more than the %s of %s; lower %s: %w",
		flag, value, Human(bytes), bytes, Human(float64(lim)), why, flag, ErrTooLarge)
}

// Count refuses flag when its value, a count that sets work rather than memory, is above max.
func Count(flag string, value, max int64) error {
	if value <= max {
		return nil
	}
	return fmt.Errorf("%s %d: more than the %d this command allows (the run would not end in reasonable time): %w", flag, value, max, ErrTooLarge)
}

// Human formats bytes as "18.8 GB" (powers of 1000, as disks and the issue tracker count).
func Human(b float64) string {
	switch {
	case b >= 1e15:
		return fmt.Sprintf("%.3g PB", b/1e15)
	case b >= 1e12:
		return fmt.Sprintf("%.1f TB", b/1e12)
	case b >= 1e9:
		return fmt.Sprintf("%.1f GB", b/1e9)
	case b >= 1e6:
		return fmt.Sprintf("%.1f MB", b/1e6)
	}
	return fmt.Sprintf("%.0f bytes", b)
}

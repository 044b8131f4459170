package flagcheck

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestBytes(t *testing.T) {
	limitOnce.Do(func() {})
	limit, limitWhy = 1<<30, EnvLimit
	err := Bytes("--samples", 2000000, Mul(2000000, 3*12*16, 4, 4))
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "--samples 2000000") || !strings.Contains(err.Error(), "bytes") || strings.Contains(err.Error(), "\n") {
		t.Errorf("%v", err)
	}
	if err := Bytes("--batch", 8, 8<<20); err != nil {
		t.Error(err)
	}
	if err := Count("--permutations", 1<<40, 1e6); !errors.Is(err, ErrTooLarge) {
		t.Error(err)
	}
	for s, want := range map[string]int64{"2G": 2 << 30, "512m": 512 << 20, "1024": 1024, "1.5GB": 3 << 29} {
		if got, err := ParseBytes(s); err != nil || got != want {
			t.Errorf("%s: %d %v", s, got, err)
		}
	}
}

func ExampleBytes() {
	limitOnce.Do(func() {})
	limit, limitWhy = 24e9, "the machine's memory"
	fmt.Println(Bytes("--max-rows", 200000, Mul(200000, 200000, 4)))
	// Output: --max-rows 200000: needs 160.0 GB (160000000000 bytes) at once, more than the 24.0 GB of the machine's memory; lower --max-rows: too large
}

package progress_test

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/perceiverkit/perceiver/internal/progress"
)

func Example() {
	// A fixed clock makes the output reproducible; real callers omit WithClock.
	t := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return t }

	var out strings.Builder
	bar := progress.New(&out, 1000, "embed", progress.Unit("images"), progress.Force(), progress.WithClock(clock))
	t = t.Add(10 * time.Second)
	bar.Add(1000)
	bar.Finish()

	lines := strings.Split(strings.TrimSpace(out.String()), "\r")
	fmt.Println(lines[len(lines)-1])
	// Output: embed 100% |####################| 1000/1000 images  100 images/s  in 0:10
}

func ExampleNew_bytes() {
	// Stdout is not a terminal when examples run, so this bar stays silent:
	// the same code draws a live bar in an interactive shell.
	bar := progress.New(os.Stdout, 262_000_000, "pytorch_model.bin", progress.Bytes())
	bar.Add(262_000_000)
	bar.Finish()
	fmt.Println("downloaded", bar.Count(), "bytes")
	// Output: downloaded 262000000 bytes
}

package main

import (
	"fmt"
	"runtime/pprof"
	"strings"

	"github.com/perceiverkit/perceiver/internal/outfile"
)

// cutProfileFlag removes --cpuprofile FILE (or -cpuprofile, or =FILE) from a command's arguments,
// wherever it stands before a "--", and returns the file: the profile covers the whole command,
// flag parsing and model loading included, for every command alike.
func cutProfileFlag(args []string) (rest []string, file string, err error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(rest, args[i:]...), file, nil
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "cpuprofile" {
			rest = append(rest, a)
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				return nil, "", fmt.Errorf("--cpuprofile needs a file name")
			}
			i++
			value = args[i]
		}
		if value == "" {
			return nil, "", fmt.Errorf("--cpuprofile needs a file name")
		}
		file = value
	}
	return rest, file, nil
}

// startCPUProfile profiles the process into path (written through a temporary name, put in place
// by stop) until stop is called.
func startCPUProfile(path string) (stop func() error, err error) {
	if err := refuseExisting(path); err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	f, err := outfile.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Abort()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}

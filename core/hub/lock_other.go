//go:build !unix

package hub

import "context"

// lockFile is a no-op where flock is unavailable.
func lockFile(ctx context.Context, path string) (unlock func(), err error) { return func() {}, nil }

// freeSpace is unknown here; the write itself reports a full disk.
var freeSpace = func(dir string) (int64, bool) { return 0, false }

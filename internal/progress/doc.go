// Package progress draws a one-line progress bar on a terminal.
//
// A Bar counts either items (images, records, shards; the default) or bytes
// (the Bytes option, shown with SI prefixes as kB, MB, GB). Each redraw
// rewrites the line in place with a carriage return and shows the count, the
// percentage and a bar when the total is known, the average rate since the
// bar was created, and the time left (or, after Finish, the time taken).
//
// Conventions:
//   - Redraws happen at most every 100 ms, so Add can sit in a hot loop; Add is
//     safe for concurrent use by several goroutines.
//   - A Bar is silent unless its writer is an *os.File attached to a terminal,
//     so logs and pipes never collect carriage returns; Force overrides that.
//   - A nil *Bar is valid and does nothing, so callers need no checks.
package progress

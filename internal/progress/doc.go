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
//   - A Bar redraws in place only when its writer is an *os.File attached to a
//     terminal (or Force is given). To any other *os.File, a log file or a pipe
//     (Slurm's output), it writes one whole line every 10 s and, if it wrote any,
//     a last one at Finish: logs never collect carriage returns, and a long run
//     still shows it is alive. In-memory writers get nothing.
//   - A nil *Bar is valid and does nothing, so callers need no checks.
package progress

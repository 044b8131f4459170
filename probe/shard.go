package probe

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// Shard selects a deterministic 1/N of a source: item i belongs to shard K
// when i mod N == K-1. K is 1-based, as on the command line (--shard 2/4).
// The zero value is invalid; Shard{1, 1} is the whole source.
type Shard struct{ K, N int }

// Whole is the shard that contains every item.
var Whole = Shard{K: 1, N: 1}

// ParseShard parses "K/N" with 1 <= K <= N.
func ParseShard(s string) (Shard, error) {
	k, n, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return Shard{}, fmt.Errorf("shard %q: want K/N, e.g. 2/8", s)
	}
	ki, err1 := strconv.Atoi(strings.TrimSpace(k))
	ni, err2 := strconv.Atoi(strings.TrimSpace(n))
	if err1 != nil || err2 != nil {
		return Shard{}, fmt.Errorf("shard %q: want K/N with integers, e.g. 2/8", s)
	}
	sh := Shard{K: ki, N: ni}
	if err := sh.validate(); err != nil {
		return Shard{}, fmt.Errorf("shard %q: %w", s, err)
	}
	return sh, nil
}

func (s Shard) validate() error {
	if s.N < 1 || s.K < 1 || s.K > s.N {
		return fmt.Errorf("need 1 <= K <= N, got K=%d N=%d", s.K, s.N)
	}
	return nil
}

// String formats the shard as "K/N".
func (s Shard) String() string { return strconv.Itoa(s.K) + "/" + strconv.Itoa(s.N) }

// Contains reports whether the item at position index of the source belongs
// to this shard. Because membership depends only on the index, the shards
// 1/N … N/N partition the source and their union is the whole source.
func (s Shard) Contains(index int) bool {
	if s.N <= 1 {
		return true
	}
	return index%s.N == s.K-1
}

// Count returns how many of n items belong to this shard.
func (s Shard) Count(n int) int {
	if s.N <= 1 {
		return n
	}
	if n <= s.K-1 {
		return 0
	}
	return (n-s.K)/s.N + 1
}

// PartPath inserts "-part-K-of-N" before the extension of path
// ("emb.parquet" → "emb-part-2-of-4.parquet"). The whole source (N = 1)
// keeps path unchanged.
func PartPath(path string, s Shard) string {
	if s.N <= 1 {
		return path
	}
	ext := filepath.Ext(path)
	return strings.TrimSuffix(path, ext) + fmt.Sprintf("-part-%d-of-%d", s.K, s.N) + ext
}

// Environment variables read by ShardFromEnv.
const (
	EnvJobCompletionIndex = "JOB_COMPLETION_INDEX"   // Kubernetes Indexed Job, 0-based
	EnvJobCompletions     = "JOB_COMPLETIONS"        // shard count for an Indexed Job (set it in the Job spec)
	EnvSlurmTaskID        = "SLURM_ARRAY_TASK_ID"    // Slurm job array task id
	EnvSlurmTaskMin       = "SLURM_ARRAY_TASK_MIN"   // first task id of the array (0 when unset)
	EnvSlurmTaskCount     = "SLURM_ARRAY_TASK_COUNT" // number of tasks in the array
)

// ShardFromEnv finds the shard of this process from a cluster scheduler's
// environment: a Kubernetes Indexed Job (JOB_COMPLETION_INDEX, with the count
// from total or JOB_COMPLETIONS) or a Slurm job array (SLURM_ARRAY_TASK_ID,
// SLURM_ARRAY_TASK_MIN, SLURM_ARRAY_TASK_COUNT; total, when > 0, must agree).
// ok is false, with Whole, when neither is present. getenv is usually
// os.Getenv.
func ShardFromEnv(getenv func(string) string, total int) (sh Shard, ok bool, err error) {
	atoi := func(name string) (int, bool, error) {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return 0, false, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, true, fmt.Errorf("environment %s=%q is not an integer", name, v)
		}
		return n, true, nil
	}
	if total < 0 {
		return Whole, false, fmt.Errorf("shard count %d is negative", total)
	}

	if idx, set, err := atoi(EnvJobCompletionIndex); err != nil {
		return Whole, false, err
	} else if set {
		n := total
		if n == 0 {
			c, cset, err := atoi(EnvJobCompletions)
			if err != nil {
				return Whole, false, err
			}
			if !cset {
				return Whole, false, fmt.Errorf("%s is set but the shard count is not: pass it as a flag or set %s", EnvJobCompletionIndex, EnvJobCompletions)
			}
			n = c
		}
		sh = Shard{K: idx + 1, N: n}
		if err := sh.validate(); err != nil {
			return Whole, false, fmt.Errorf("%s=%d with %d shards: %w", EnvJobCompletionIndex, idx, n, err)
		}
		return sh, true, nil
	}

	id, set, err := atoi(EnvSlurmTaskID)
	if err != nil || !set {
		return Whole, false, err
	}
	minID, _, err := atoi(EnvSlurmTaskMin)
	if err != nil {
		return Whole, false, err
	}
	count, cset, err := atoi(EnvSlurmTaskCount)
	if err != nil {
		return Whole, false, err
	}
	n := total
	switch {
	case cset && total > 0 && count != total:
		return Whole, false, fmt.Errorf("%s=%d disagrees with the shard count %d", EnvSlurmTaskCount, count, total)
	case n == 0 && !cset:
		return Whole, false, fmt.Errorf("%s is set but %s is not", EnvSlurmTaskID, EnvSlurmTaskCount)
	case n == 0:
		n = count
	}
	sh = Shard{K: id - minID + 1, N: n}
	if err := sh.validate(); err != nil {
		// A stepped array (--array=0-20:2) lands here: task ids must be contiguous.
		return Whole, false, fmt.Errorf("%s=%d (min %d) with %d tasks: %w; use a contiguous array such as --array=0-%d", EnvSlurmTaskID, id, minID, n, err, n-1)
	}
	return sh, true, nil
}

// Members lists the indices of src that belong to shard s, ascending. A
// source made of container files (WebDataset tars) with at least N of them
// assigns whole files to shards, file f (in source order) to shard
// f mod N + 1, so that each worker reads only its own files; every other
// source uses Contains. Either way the N shards partition the source.
func (s Shard) Members(src Source) []int {
	if f, ok := src.(interface {
		fileShards(n int) (func(i int) int, bool)
	}); ok && s.N > 1 {
		if of, whole := f.fileShards(s.N); whole {
			var out []int
			for i := range src.Len() {
				if of(i)%s.N == s.K-1 {
					out = append(out, i)
				}
			}
			return out
		}
	}
	out := make([]int, 0, s.Count(src.Len()))
	for i := range src.Len() {
		if s.Contains(i) {
			out = append(out, i)
		}
	}
	return out
}

// Plan says how a shard of src is chosen, for run summaries: "items i with
// i mod N = K-1" or "whole tar files …".
func (s Shard) Plan(src Source) string {
	if s.N <= 1 {
		return "all items"
	}
	if f, ok := src.(interface {
		fileShards(n int) (func(i int) int, bool)
	}); ok {
		if _, whole := f.fileShards(s.N); whole {
			return fmt.Sprintf("whole files: file f (in source order, from 0) when f mod %d = %d", s.N, s.K-1)
		}
	}
	return fmt.Sprintf("items i with i mod %d = %d", s.N, s.K-1)
}

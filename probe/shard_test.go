package probe

import (
	"reflect"
	"testing"
)

func TestParseShard(t *testing.T) {
	for in, want := range map[string]Shard{"1/1": {1, 1}, "2/8": {2, 8}, " 8/8 ": {8, 8}} {
		if got, err := ParseShard(in); err != nil || got != want {
			t.Errorf("ParseShard(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0/4", "5/4", "1/0", "a/b", "2", "-1/3", "1/2/3"} {
		if _, err := ParseShard(in); err == nil {
			t.Errorf("ParseShard(%q) accepted", in)
		}
	}
}

// TestShardsPartition checks that the shards of every N cover each index
// exactly once and that Count agrees with Contains.
func TestShardsPartition(t *testing.T) {
	for n := 1; n <= 7; n++ {
		for items := 0; items <= 20; items++ {
			owners := make([]int, items)
			for k := 1; k <= n; k++ {
				s := Shard{k, n}
				c := 0
				for i := 0; i < items; i++ {
					if s.Contains(i) {
						owners[i]++
						c++
					}
				}
				if c != s.Count(items) {
					t.Fatalf("%v over %d items: Contains %d, Count %d", s, items, c, s.Count(items))
				}
			}
			for i, o := range owners {
				if o != 1 {
					t.Fatalf("N=%d: item %d in %d shards", n, i, o)
				}
			}
		}
	}
	if !(Shard{2, 4}).Contains(5) || (Shard{2, 4}).Contains(4) {
		t.Error("2/4 must hold index 5 (5 mod 4 = 1) and not 4")
	}
}

func TestPartPath(t *testing.T) {
	cases := []struct {
		path string
		s    Shard
		want string
	}{
		{"out/emb.parquet", Shard{2, 4}, "out/emb-part-2-of-4.parquet"},
		{"emb", Shard{1, 2}, "emb-part-1-of-2"},
		{"a.b/emb.parquet", Shard{1, 1}, "a.b/emb.parquet"},
	}
	for _, c := range cases {
		if got := PartPath(c.path, c.s); got != c.want {
			t.Errorf("PartPath(%q, %v) = %q, want %q", c.path, c.s, got, c.want)
		}
	}
}

func TestShardFromEnv(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	type result struct {
		s   Shard
		ok  bool
		err bool
	}
	cases := []struct {
		name  string
		get   func(string) string
		total int
		want  result
	}{
		{"none", env(), 0, result{Whole, false, false}},
		{"k8s flag total", env("JOB_COMPLETION_INDEX", "0"), 4, result{Shard{1, 4}, true, false}},
		{"k8s env total", env("JOB_COMPLETION_INDEX", "3", "JOB_COMPLETIONS", "4"), 0, result{Shard{4, 4}, true, false}},
		{"k8s no total", env("JOB_COMPLETION_INDEX", "1"), 0, result{Whole, false, true}},
		{"k8s out of range", env("JOB_COMPLETION_INDEX", "4"), 4, result{Whole, false, true}},
		{"k8s garbage", env("JOB_COMPLETION_INDEX", "x"), 4, result{Whole, false, true}},
		{"slurm 0-based", env("SLURM_ARRAY_TASK_ID", "0", "SLURM_ARRAY_TASK_MIN", "0", "SLURM_ARRAY_TASK_COUNT", "3"), 0, result{Shard{1, 3}, true, false}},
		{"slurm 1-based", env("SLURM_ARRAY_TASK_ID", "3", "SLURM_ARRAY_TASK_MIN", "1", "SLURM_ARRAY_TASK_COUNT", "3"), 0, result{Shard{3, 3}, true, false}},
		{"slurm stepped", env("SLURM_ARRAY_TASK_ID", "4", "SLURM_ARRAY_TASK_MIN", "0", "SLURM_ARRAY_TASK_COUNT", "3"), 0, result{Whole, false, true}},
		{"slurm disagrees", env("SLURM_ARRAY_TASK_ID", "0", "SLURM_ARRAY_TASK_COUNT", "3"), 4, result{Whole, false, true}},
		{"slurm no count", env("SLURM_ARRAY_TASK_ID", "0"), 0, result{Whole, false, true}},
	}
	for _, c := range cases {
		s, ok, err := ShardFromEnv(c.get, c.total)
		if got := (result{s, ok, err != nil}); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %v ok=%v err=%v, want %+v", c.name, s, ok, err, c.want)
		}
	}
}

package runid

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	a := map[string]string{Weights: "aaaa", SourceDigest: "d1", Layers: "decoder"}
	b := map[string]string{Weights: "bbbb", SourceDigest: "d1", Layers: "decoder", Precision: "float32"}
	err := Check("x.parquet", a, "y.parquet", b, ReaderKeys, "")
	var m *MismatchError
	if !errors.As(err, &m) || !errors.Is(err, ErrMismatch) || len(m.Diffs) != 1 || m.Diffs[0].Key != Weights {
		t.Fatalf("%v", err)
	}
	for _, want := range []string{"x.parquet", "y.parquet", "weights.sha256", `"aaaa"`, `"bbbb"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	b[Weights] = "aaaa"
	if err := Check("x", a, "y", b, ReaderKeys, ""); err != nil {
		t.Errorf("an absent precision is float32: %v", err)
	}
	b[Precision] = "bfloat16"
	delete(b, Layers)
	if d := Compare(a, b, ReaderKeys); len(d) != 2 || !d[0].AbsentB || d[1].Key != Precision {
		t.Errorf("%+v", d)
	}
}

func ExampleCheck() {
	stored := map[string]string{Weights: "9f2c", SourceDigest: "d1"}
	now := map[string]string{Weights: "77aa", SourceDigest: "d1"}
	fmt.Println(Check("run.json", stored, "this run", now, []string{Weights, SourceDigest}, "rerun with those settings or choose another --out"))
	// Output: run.json and this run are not of one run: weights.sha256 ("9f2c" in run.json, "77aa" in this run) differs; rerun with those settings or choose another --out
}

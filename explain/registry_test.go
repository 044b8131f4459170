package explain

import (
	"slices"
	"testing"
)

func TestRegistry(t *testing.T) {
	names := Names()
	if !slices.IsSorted(names) {
		t.Fatalf("Names not sorted: %v", names)
	}
	for _, want := range []string{"mean", "decoder", "rollout"} {
		if _, ok := Lookup(want); !ok {
			t.Errorf("method %q not registered (have %v)", want, names)
		}
	}
	if _, ok := Lookup("no-such-method"); ok {
		t.Error("Lookup found an unregistered name")
	}
	defer func() {
		if recover() == nil {
			t.Error("registering a duplicate name did not panic")
		}
	}()
	m, _ := Lookup("mean")
	Register(m)
}

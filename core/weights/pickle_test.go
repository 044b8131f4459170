package weights

import (
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// The byte strings below were produced by CPython 3.11's pickle.dumps (the
// Python expression is quoted above each), so the expected values are
// Python's, not ours.

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUnpickleScalarsAndContainers(t *testing.T) {
	// pickle.dumps([2**40, -2**40, -1, 255, 65535, -129, 2**31, 0, 1.5, b'ab', 'é',
	//               True, False, None, (1,2,3,4), (), (7,), {'k': [1, 2]}], 4)
	data := mustHex(t, "80049562000000000000005d94288a060000000000018a060000000000ff4affffffff4bff4dffff4a7fffffff8a0500000080004b00473ff800000000000043026162948c02c3a99488894e284b014b024b034b047494294b0785947d948c016b945d94284b014b026573652e")
	got, err := unpickle(data)
	if err != nil {
		t.Fatal(err)
	}
	dict := newPickleDict()
	dict.set("k", &pickleList{items: []any{int64(1), int64(2)}})
	want := &pickleList{items: []any{int64(1 << 40), int64(-1 << 40), int64(-1), int64(255), int64(65535), int64(-129),
		int64(1 << 31), int64(0), 1.5, []byte("ab"), "é", true, false, nil,
		pickleTuple{int64(1), int64(2), int64(3), int64(4)}, pickleTuple{}, pickleTuple{int64(7)}, dict}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("unpickle = %#v\nwant %#v", got, want)
	}
}

func TestUnpickleHandWritten(t *testing.T) {
	// Opcodes Python's pickler rarely emits for these values, written by hand:
	// SHORT_BINSTRING, BINSTRING, DUP, POP, POP_MARK, APPEND, NEWOBJ on
	// OrderedDict, SETITEM, LONG4.
	data := []byte("\x80\x02]" + // EMPTY_LIST
		"U\x02hi" + "a" + // SHORT_BINSTRING 'hi', APPEND
		"T\x03\x00\x00\x00abc" + "2" + "e" + // BINSTRING, DUP, APPENDS with no MARK: an error
		".")
	if _, err := unpickle(data); err == nil {
		t.Errorf("APPENDS without MARK succeeded")
	}
	data = []byte("\x80\x02]" +
		"U\x02hi" + "a" +
		"(T\x03\x00\x00\x00abc2e" + // MARK, BINSTRING 'abc', DUP, APPENDS
		"(K\x01K\x021" + // MARK, 1, 2, POP_MARK
		"K\x090" + // 9, POP
		"ccollections\nOrderedDict\n)\x81" + // NEWOBJ OrderedDict
		"K\x05\x8b\x02\x00\x00\x00\xff\x7fs" + // SETITEM 5 -> LONG4 32767
		"a.") // APPEND
	got, err := unpickle(data)
	if err != nil {
		t.Fatal(err)
	}
	dict := newPickleDict()
	dict.set(int64(5), int64(32767))
	want := &pickleList{items: []any{"hi", "abc", "abc", dict}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("unpickle = %#v\nwant %#v", got, want)
	}
}

func TestUnpickleErrors(t *testing.T) {
	cases := []struct {
		name, hex string
		target    error
		fragment  string
	}{
		// pickle.dumps([... b'ab' ...], 2): protocol 2 pickles bytes through _codecs.encode.
		{"codecs", "80025d7100288a060000000000018a060000000000ff4affffffff4bff4dffff4a7fffffff8a0500000080004b00473ff8000000000000635f636f646563730a656e636f64650a710158020000006162710258060000006c6174696e3171038671045271055802000000c3a9710688894e284b014b024b034b04747107294b078571087d710958010000006b710a5d710b284b014b026573652e",
			ErrUnlistedGlobal, "pickle calls unlisted global _codecs.encode"},
		// pickle.dumps(2**63, 2): a 9-byte LONG1.
		{"bigint", "80028a090000000000000080002e", ErrMalformed, "integer of 9 bytes is too large"},
		{"empty", "", ErrMalformed, "pickle ends early"},
		{"no stop", "80024b01", ErrMalformed, "pickle ends early"},
		{"unknown opcode", "8002ff", ErrMalformed, "unsupported pickle opcode 0xff"},
		{"protocol 6", "8006", ErrMalformed, "unsupported pickle protocol 6"},
		{"underflow", "80022e", ErrMalformed, "stack underflow"},
		{"missing memo", "8002680a2e", ErrMalformed, "memo entry 10 was never stored"},
		{"huge string", "80028dffffffffffffff7f2e", ErrMalformed, "pickle ends early"},
		{"near-miss module", "8002635f746f7263680a466c6f617453746f726167650a", ErrUnlistedGlobal, "_torch.FloatStorage"},
		{"reduce storage", "800263746f7263680a466c6f617453746f726167650a29522e", ErrMalformed, "REDUCE calls torch.FloatStorage"},
		{"setitem on list", "80025d4b014b02732e", ErrMalformed, "SETITEM on a list"},
		{"build on list", "80025d4e622e", ErrMalformed, "BUILD on a list"},
		{"bad persid", "80024b01512e", ErrMalformed, "persistent id int64 is not a torch storage"},
	}
	for _, c := range cases {
		_, err := unpickle(mustHex(t, c.hex))
		if err == nil || !errors.Is(err, c.target) || !strings.Contains(err.Error(), c.fragment) {
			t.Errorf("%s: err = %v, want %v containing %q", c.name, err, c.target, c.fragment)
		}
	}
}

// TestErrorsStayOneLine: names read from a file (globals, storage keys, tensor names) are quoted
// when they hold control characters, so that an error is still one line (found by FuzzUnpickle).
func TestErrorsStayOneLine(t *testing.T) {
	_, err := unpickle([]byte("\x8c\x0b00000\n00000\x8c\x0b00000000000\x93"))
	if err == nil || strings.Contains(err.Error(), "\n") || !errors.Is(err, ErrUnlistedGlobal) {
		t.Fatalf("unlisted global with a newline: %q", err)
	}
	e := &Error{Path: "x.bin", Tensor: "a\nb", Err: ErrMalformed}
	if got, want := e.Error(), `x.bin: tensor "a\nb": `+ErrMalformed.Error(); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got := (&Error{Path: "x.bin", Tensor: "encoder.weight", Err: ErrMalformed}).Error(); strings.Contains(got, `"`) {
		t.Fatalf("a plain name was quoted: %q", got)
	}
}

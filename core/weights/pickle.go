package weights

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// This file is a pickle interpreter restricted to what torch.save emits for a
// state dict. It never imports or calls anything: GLOBAL opcodes resolve only
// against allowedGlobals, and REDUCE runs a Go stand-in for the few callables
// in that list.

// Values on the pickle stack are nil (None), bool, int64, float64, string,
// []byte, and the types below.
type (
	pickleGlobal struct{ module, name string }
	pickleTuple  []any
	pickleList   struct{ items []any }
	pickleDict   struct {
		keys, values []any
		index        map[any]int // position of hashable scalar keys
	}
	// storageRef is a persistent id ('storage', torch.XStorage, key, location, numel).
	storageRef struct {
		typeName string // e.g. "FloatStorage"
		dtype    string // safetensors spelling, e.g. "F32"
		key      string // entry data/<key> in the archive
		numel    int64  // elements, of dtype's size
	}
	// tensorRef is the result of torch._utils._rebuild_tensor_v2.
	tensorRef struct {
		storage      *storageRef
		offset       int64
		size, stride []int64
	}
)

func newPickleDict() *pickleDict { return &pickleDict{index: make(map[any]int)} }

func (d *pickleDict) set(k, v any) {
	switch k.(type) {
	case nil, bool, int64, float64, string:
		if i, ok := d.index[k]; ok {
			d.values[i] = v
			return
		}
		d.index[k] = len(d.keys)
	}
	d.keys = append(d.keys, k)
	d.values = append(d.values, v)
}

// Global kinds accepted by the unpickler.
const (
	globalOrderedDict = iota + 1
	globalRebuildTensor
	globalRebuildParameter
	globalStorage
)

var allowedGlobals = map[string]int{
	"collections.OrderedDict":                    globalOrderedDict,
	"torch._utils._rebuild_tensor_v2":            globalRebuildTensor,
	"torch._utils._rebuild_parameter":            globalRebuildParameter,
	"torch._utils._rebuild_parameter_with_state": globalRebuildParameter,
	"torch.FloatStorage":                         globalStorage,
	"torch.HalfStorage":                          globalStorage,
	"torch.BFloat16Storage":                      globalStorage,
	"torch.DoubleStorage":                        globalStorage,
	"torch.LongStorage":                          globalStorage,
	"torch.IntStorage":                           globalStorage,
	"torch.ShortStorage":                         globalStorage,
	"torch.CharStorage":                          globalStorage,
	"torch.ByteStorage":                          globalStorage,
	"torch.BoolStorage":                          globalStorage,
	"torch.ComplexFloatStorage":                  globalStorage,
	"torch.ComplexDoubleStorage":                 globalStorage,
	"torch.UntypedStorage":                       globalStorage,
}

// storageDTypes maps storage class names to safetensors dtype spellings.
var storageDTypes = map[string]string{
	"FloatStorage":         "F32",
	"HalfStorage":          "F16",
	"BFloat16Storage":      "BF16",
	"DoubleStorage":        "F64",
	"LongStorage":          "I64",
	"IntStorage":           "I32",
	"ShortStorage":         "I16",
	"CharStorage":          "I8",
	"ByteStorage":          "U8",
	"BoolStorage":          "BOOL",
	"ComplexFloatStorage":  "C64",
	"ComplexDoubleStorage": "C128",
	"UntypedStorage":       "U8",
}

var errPickleTruncated = fmt.Errorf("%w: pickle ends early", ErrMalformed)

type unpickler struct {
	data  []byte
	pos   int
	stack []any
	marks []int
	memo  map[uint64]any
}

// unpickle interprets a torch.save pickle and returns its top-level value.
func unpickle(data []byte) (any, error) {
	u := &unpickler{data: data, memo: make(map[uint64]any)}
	return u.run()
}

func (u *unpickler) fail(format string, args ...any) error {
	return fmt.Errorf("%w: pickle byte %d: "+format, append([]any{ErrMalformed, u.pos}, args...)...)
}

func (u *unpickler) read(n uint64) ([]byte, error) {
	if n > uint64(len(u.data)-u.pos) {
		return nil, errPickleTruncated
	}
	b := u.data[u.pos : u.pos+int(n)]
	u.pos += int(n)
	return b, nil
}

func (u *unpickler) readUint(n int) (uint64, error) {
	b, err := u.read(uint64(n))
	if err != nil {
		return 0, err
	}
	var x uint64
	for i := n - 1; i >= 0; i-- {
		x = x<<8 | uint64(b[i])
	}
	return x, nil
}

func (u *unpickler) readLine() (string, error) {
	i := bytes.IndexByte(u.data[u.pos:], '\n')
	if i < 0 {
		return "", errPickleTruncated
	}
	s := string(u.data[u.pos : u.pos+i])
	u.pos += i + 1
	return s, nil
}

func (u *unpickler) push(v any) { u.stack = append(u.stack, v) }

func (u *unpickler) pop() (any, error) {
	base := 0
	if len(u.marks) > 0 {
		base = u.marks[len(u.marks)-1]
	}
	if len(u.stack) <= base {
		return nil, u.fail("stack underflow")
	}
	v := u.stack[len(u.stack)-1]
	u.stack = u.stack[:len(u.stack)-1]
	return v, nil
}

func (u *unpickler) top() (any, error) {
	base := 0
	if len(u.marks) > 0 {
		base = u.marks[len(u.marks)-1]
	}
	if len(u.stack) <= base {
		return nil, u.fail("stack underflow")
	}
	return u.stack[len(u.stack)-1], nil
}

// popMark returns the items pushed since the last MARK and removes them.
func (u *unpickler) popMark() ([]any, error) {
	if len(u.marks) == 0 {
		return nil, u.fail("no MARK on the stack")
	}
	m := u.marks[len(u.marks)-1]
	u.marks = u.marks[:len(u.marks)-1]
	items := append([]any(nil), u.stack[m:]...)
	u.stack = u.stack[:m]
	return items, nil
}

func (u *unpickler) run() (any, error) {
	for {
		if u.pos >= len(u.data) {
			return nil, errPickleTruncated
		}
		op := u.data[u.pos]
		u.pos++
		var err error
		switch op {
		case 0x80: // PROTO
			var p []byte
			if p, err = u.read(1); err == nil && p[0] > 5 {
				err = u.fail("unsupported pickle protocol %d", p[0])
			}
		case 0x95: // FRAME: framing is only a hint for buffered readers
			_, err = u.read(8)
		case '.': // STOP
			v, err := u.pop()
			if err != nil {
				return nil, err
			}
			return v, nil
		case '(': // MARK
			u.marks = append(u.marks, len(u.stack))
		case '0': // POP
			_, err = u.pop()
		case '1': // POP_MARK
			_, err = u.popMark()
		case '2': // DUP
			var v any
			if v, err = u.top(); err == nil {
				u.push(v)
			}
		case 'N':
			u.push(nil)
		case 0x88:
			u.push(true)
		case 0x89:
			u.push(false)
		case 'J': // BININT
			var x uint64
			if x, err = u.readUint(4); err == nil {
				u.push(int64(int32(uint32(x))))
			}
		case 'K': // BININT1
			var x uint64
			if x, err = u.readUint(1); err == nil {
				u.push(int64(x))
			}
		case 'M': // BININT2
			var x uint64
			if x, err = u.readUint(2); err == nil {
				u.push(int64(x))
			}
		case 0x8a, 0x8b: // LONG1, LONG4: little-endian two's complement
			err = u.long(op)
		case 'G': // BINFLOAT, big-endian
			var b []byte
			if b, err = u.read(8); err == nil {
				u.push(math.Float64frombits(binary.BigEndian.Uint64(b)))
			}
		case 'X', 0x8c, 0x8d, 'T', 'U': // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8, BINSTRING, SHORT_BINSTRING
			var b []byte
			if b, err = u.counted(op); err == nil {
				u.push(string(b))
			}
		case 'B', 'C', 0x8e: // BINBYTES, SHORT_BINBYTES, BINBYTES8
			var b []byte
			if b, err = u.counted(op); err == nil {
				u.push(append([]byte(nil), b...))
			}
		case ')':
			u.push(pickleTuple{})
		case ']':
			u.push(&pickleList{})
		case '}':
			u.push(newPickleDict())
		case 't': // TUPLE
			var items []any
			if items, err = u.popMark(); err == nil {
				u.push(pickleTuple(items))
			}
		case 0x85, 0x86, 0x87: // TUPLE1..3
			n := int(op-0x85) + 1
			t := make(pickleTuple, n)
			for i := n - 1; i >= 0 && err == nil; i-- {
				t[i], err = u.pop()
			}
			u.push(t)
		case 'q', 'r': // BINPUT, LONG_BINPUT
			var idx uint64
			if idx, err = u.readUint(indexWidth(op == 'r')); err == nil {
				var v any
				if v, err = u.top(); err == nil {
					u.memo[idx] = v
				}
			}
		case 0x94: // MEMOIZE
			var v any
			if v, err = u.top(); err == nil {
				u.memo[uint64(len(u.memo))] = v
			}
		case 'h', 'j': // BINGET, LONG_BINGET
			var idx uint64
			if idx, err = u.readUint(indexWidth(op == 'j')); err == nil {
				v, ok := u.memo[idx]
				if !ok {
					err = u.fail("memo entry %d was never stored", idx)
				}
				u.push(v)
			}
		case 'c': // GLOBAL "module\nname\n"
			var mod, name string
			if mod, err = u.readLine(); err == nil {
				if name, err = u.readLine(); err == nil {
					err = u.global(mod, name)
				}
			}
		case 0x93: // STACK_GLOBAL
			var name, mod any
			if name, err = u.pop(); err == nil {
				if mod, err = u.pop(); err == nil {
					ms, ok1 := mod.(string)
					ns, ok2 := name.(string)
					if !ok1 || !ok2 {
						err = u.fail("STACK_GLOBAL needs two strings")
					} else {
						err = u.global(ms, ns)
					}
				}
			}
		case 'R': // REDUCE
			var args, fn any
			if args, err = u.pop(); err == nil {
				if fn, err = u.pop(); err == nil {
					var v any
					if v, err = u.call(fn, args); err == nil {
						u.push(v)
					}
				}
			}
		case 0x81: // NEWOBJ cls.__new__(cls, *args): only OrderedDict qualifies
			var args, cls any
			if args, err = u.pop(); err == nil {
				if cls, err = u.pop(); err == nil {
					if g, ok := cls.(pickleGlobal); ok && allowedGlobals[g.module+"."+g.name] == globalOrderedDict {
						u.push(newPickleDict())
					} else {
						err = u.fail("NEWOBJ of %v", describe(cls))
					}
					_ = args
				}
			}
		case 'b': // BUILD
			var state, obj any
			if state, err = u.pop(); err == nil {
				if obj, err = u.top(); err == nil {
					// A state dict's __dict__ holds only _metadata (module
					// versions); tensors may carry Python attributes. Neither
					// affects the values, so the state is dropped.
					switch obj.(type) {
					case *pickleDict, *tensorRef:
					default:
						err = u.fail("BUILD on %s", describe(obj))
					}
					_ = state
				}
			}
		case 's': // SETITEM
			var k, v, d any
			if v, err = u.pop(); err == nil {
				if k, err = u.pop(); err == nil {
					if d, err = u.top(); err == nil {
						err = u.setItems(d, []any{k, v})
					}
				}
			}
		case 'u': // SETITEMS
			var items []any
			var d any
			if items, err = u.popMark(); err == nil {
				if d, err = u.top(); err == nil {
					err = u.setItems(d, items)
				}
			}
		case 'a': // APPEND
			var v, l any
			if v, err = u.pop(); err == nil {
				if l, err = u.top(); err == nil {
					err = u.appendItems(l, []any{v})
				}
			}
		case 'e': // APPENDS
			var items []any
			var l any
			if items, err = u.popMark(); err == nil {
				if l, err = u.top(); err == nil {
					err = u.appendItems(l, items)
				}
			}
		case 'Q': // BINPERSID
			var pid any
			if pid, err = u.pop(); err == nil {
				var s *storageRef
				if s, err = u.persistentLoad(pid); err == nil {
					u.push(s)
				}
			}
		default:
			err = u.fail("unsupported pickle opcode 0x%02x", op)
		}
		if err != nil {
			return nil, err
		}
	}
}

// indexWidth is the byte width of a memo index: 4 for the LONG_ variants.
func indexWidth(long bool) int {
	if long {
		return 4
	}
	return 1
}

func (u *unpickler) long(op byte) error {
	width := 1
	if op == 0x8b {
		width = 4
	}
	n, err := u.readUint(width)
	if err != nil {
		return err
	}
	if n > 8 {
		return u.fail("integer of %d bytes is too large", n)
	}
	b, err := u.read(n)
	if err != nil {
		return err
	}
	var x uint64
	for i := int(n) - 1; i >= 0; i-- {
		x = x<<8 | uint64(b[i])
	}
	if n > 0 && n < 8 && b[n-1]&0x80 != 0 { // sign-extend
		x |= ^uint64(0) << (8 * n)
	}
	u.push(int64(x))
	return nil
}

// counted reads a length-prefixed string or bytes argument.
func (u *unpickler) counted(op byte) ([]byte, error) {
	width := 4
	switch op {
	case 0x8c, 'U', 'C':
		width = 1
	case 0x8d, 0x8e:
		width = 8
	}
	n, err := u.readUint(width)
	if err != nil {
		return nil, err
	}
	return u.read(n)
}

func (u *unpickler) global(mod, name string) error {
	if _, ok := allowedGlobals[mod+"."+name]; !ok {
		return fmt.Errorf("%w %s", ErrUnlistedGlobal, PrintableName(mod+"."+name))
	}
	u.push(pickleGlobal{mod, name})
	return nil
}

func (u *unpickler) setItems(d any, items []any) error {
	dict, ok := d.(*pickleDict)
	if !ok {
		return u.fail("SETITEM on %s", describe(d))
	}
	if len(items)%2 != 0 {
		return u.fail("SETITEMS with an odd number of items")
	}
	for i := 0; i < len(items); i += 2 {
		dict.set(items[i], items[i+1])
	}
	return nil
}

func (u *unpickler) appendItems(l any, items []any) error {
	list, ok := l.(*pickleList)
	if !ok {
		return u.fail("APPEND on %s", describe(l))
	}
	list.items = append(list.items, items...)
	return nil
}

// persistentLoad resolves torch's storage persistent id
// ('storage', torch.XStorage, key, location, numel).
func (u *unpickler) persistentLoad(pid any) (*storageRef, error) {
	t, ok := pid.(pickleTuple)
	if !ok || len(t) != 5 || t[0] != "storage" {
		return nil, u.fail("persistent id %s is not a torch storage", describe(pid))
	}
	g, ok := t[1].(pickleGlobal)
	if !ok || allowedGlobals[g.module+"."+g.name] != globalStorage {
		return nil, u.fail("persistent id names %s, not a storage type", describe(t[1]))
	}
	key, ok := t[2].(string)
	if !ok {
		return nil, u.fail("storage key is %s, not a string", describe(t[2]))
	}
	numel, ok := t[4].(int64)
	if !ok || numel < 0 {
		return nil, u.fail("storage %s has size %s", PrintableName(key), describe(t[4]))
	}
	return &storageRef{typeName: g.name, dtype: storageDTypes[g.name], key: key, numel: numel}, nil
}

// call runs the Go stand-in for an allow-listed callable.
func (u *unpickler) call(fn, args any) (any, error) {
	g, ok := fn.(pickleGlobal)
	if !ok {
		return nil, u.fail("REDUCE calls %s", describe(fn))
	}
	a, ok := args.(pickleTuple)
	if !ok {
		return nil, u.fail("REDUCE arguments are %s, not a tuple", describe(args))
	}
	switch allowedGlobals[g.module+"."+g.name] {
	case globalOrderedDict:
		if len(a) != 0 {
			return nil, u.fail("OrderedDict with arguments")
		}
		return newPickleDict(), nil
	case globalRebuildParameter:
		if len(a) < 1 {
			return nil, u.fail("%s without arguments", g.name)
		}
		if t, ok := a[0].(*tensorRef); ok {
			return t, nil
		}
		return nil, u.fail("%s of %s", g.name, describe(a[0]))
	case globalRebuildTensor:
		return u.rebuildTensor(a)
	}
	return nil, u.fail("REDUCE calls %s.%s", g.module, g.name)
}

// rebuildTensor checks the arguments of
// _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]).
func (u *unpickler) rebuildTensor(a pickleTuple) (any, error) {
	if len(a) != 6 && len(a) != 7 {
		return nil, u.fail("_rebuild_tensor_v2 with %d arguments", len(a))
	}
	s, ok := a[0].(*storageRef)
	if !ok {
		return nil, u.fail("_rebuild_tensor_v2 of %s, not a storage", describe(a[0]))
	}
	offset, ok := a[1].(int64)
	if !ok || offset < 0 {
		return nil, u.fail("_rebuild_tensor_v2 offset %s", describe(a[1]))
	}
	size, err1 := intTuple(a[2])
	stride, err2 := intTuple(a[3])
	if err := errors.Join(err1, err2); err != nil || len(size) != len(stride) {
		return nil, u.fail("_rebuild_tensor_v2 size %s and stride %s", describe(a[2]), describe(a[3]))
	}
	return &tensorRef{storage: s, offset: offset, size: size, stride: stride}, nil
}

// intTuple converts a tuple of non-negative ints.
func intTuple(v any) ([]int64, error) {
	t, ok := v.(pickleTuple)
	if !ok {
		return nil, errors.New("not a tuple")
	}
	out := make([]int64, len(t))
	for i, x := range t {
		n, ok := x.(int64)
		if !ok || n < 0 {
			return nil, errors.New("not a non-negative int")
		}
		out[i] = n
	}
	return out, nil
}

// describe names a pickle value's type for error messages.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case pickleGlobal:
		return v.module + "." + v.name
	case pickleTuple:
		return fmt.Sprintf("a %d-tuple", len(v))
	case *pickleList:
		return "a list"
	case *pickleDict:
		return "a dict"
	case *storageRef:
		return "a storage"
	case *tensorRef:
		return "a tensor"
	case string:
		if len(v) > 40 {
			v = v[:40] + "…"
		}
		return fmt.Sprintf("%q", v)
	default:
		return fmt.Sprintf("%T", v)
	}
}

package probe

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/x448/float16"
	"golang.org/x/sys/unix"
)

// TokensFormat names the sidecar layout written by TokenWriter.
const TokensFormat = "perceiverkit-tokens/1"

// Token dtypes: IEEE half precision (the default, 2 bytes a value) or single precision.
const (
	TokensFloat16 = "float16"
	TokensFloat32 = "float32"
)

// TokenMeta is the JSON sidecar NAME.json of a token array NAME.bin: everything a reader needs,
// numpy's included (shape, dtype, little-endian, C order).
type TokenMeta struct {
	Format   string            `json:"format"`
	Name     string            `json:"name"`
	Layer    string            `json:"layer"` // cross, block{b} or layer{j}
	State    int               `json:"state"` // hidden-state index: 0 after the cross-attention, j after self-attention application j
	DType    string            `json:"dtype"` // float16 or float32, little-endian
	Order    string            `json:"order"` // "C": [rows, latents, channels], channels fastest
	Shape    [3]int            `json:"shape"` // rows, latents kept, channels
	Latents  []int             `json:"latents"`
	Model    string            `json:"model"`
	Shard    string            `json:"shard"`
	Identity map[string]string `json:"identity"` // run identity: weights digest, configs, source, options
	Metadata map[string]string `json:"metadata,omitempty"`
	IDs      []string          `json:"ids"`
	Indices  []int64           `json:"indices"`
	Labels   []int64           `json:"labels"` // -1 where unknown
	CRC32C   string            `json:"crc32c"` // of the whole .bin, hex
}

// RowBytes is the size of one row (one image) in the .bin file.
func (m *TokenMeta) RowBytes() int { return m.Shape[1] * m.Shape[2] * dtypeSize(m.DType) }

func dtypeSize(dt string) int {
	if dt == TokensFloat16 {
		return 2
	}
	return 4
}

// TokenPaths returns the array and sidecar of a token store named by base (DIR/NAME, with or
// without the .bin or .json extension).
func TokenPaths(base string) (bin, sidecar string) {
	base = strings.TrimSuffix(strings.TrimSuffix(base, ".bin"), ".json")
	return base + ".bin", base + ".json"
}

// TokensDir is the folder beside a Parquet file that holds its token arrays: emb.parquet →
// emb.tokens.
func TokensDir(parquetPath string) string {
	return strings.TrimSuffix(parquetPath, filepath.Ext(parquetPath)) + ".tokens"
}

// ParseLatentSelection reads --token-latents: "all", comma-separated indices and ranges lo-hi
// (inclusive) with an optional step ":s", e.g. "0-511:8" or "0,5,9-12".
func ParseLatentSelection(s string, latents int) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "all" {
		out := make([]int, latents)
		for i := range out {
			out[i] = i
		}
		return out, nil
	}
	seen := map[int]bool{}
	var out []int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		step := 1
		if a, b, ok := strings.Cut(part, ":"); ok {
			v, err := strconv.Atoi(b)
			if err != nil || v < 1 {
				return nil, fmt.Errorf("--token-latents %q: step %q must be a positive integer", s, b)
			}
			part, step = a, v
		}
		lo, hi := 0, 0
		var err1, err2 error
		if a, b, ok := strings.Cut(part, "-"); ok {
			lo, err1 = strconv.Atoi(a)
			hi, err2 = strconv.Atoi(b)
		} else {
			lo, err1 = strconv.Atoi(part)
			hi = lo
		}
		if err1 != nil || err2 != nil || lo < 0 || hi < lo || hi >= latents {
			return nil, fmt.Errorf("--token-latents %q: %q is not a latent range within 0…%d", s, part, latents-1)
		}
		for i := lo; i <= hi; i += step {
			if !seen[i] {
				seen[i] = true
				out = append(out, i)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// f16to32 converts every half-precision bit pattern once.
var f16to32 = func() *[1 << 16]float32 {
	var t [1 << 16]float32
	for i := range t {
		t[i] = Float16(uint16(i))
	}
	return &t
}()

// FloatToHalf rounds f to the nearest half-precision value (ties to even), as numpy's
// astype(float16) does; values beyond the range become ±inf. It is x448/float16's conversion,
// which probe export also uses.
func FloatToHalf(f float32) uint16 { return float16.Fromfloat32(f).Bits() }

// HalfToFloat widens a half-precision value exactly.
func HalfToFloat(h uint16) float32 { return f16to32[h] }

// encodeTokens writes values in the dtype into dst (len(values)·size bytes).
func encodeTokens(dst []byte, values []float32, dtype string) {
	if dtype == TokensFloat16 {
		for i, v := range values {
			binary.LittleEndian.PutUint16(dst[2*i:], FloatToHalf(v))
		}
		return
	}
	for i, v := range values {
		binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
	}
}

// decodeTokens reads len(dst) values of the dtype from src.
func decodeTokens(dst []float32, src []byte, dtype string) {
	if dtype == TokensFloat16 {
		t := f16to32
		for i := range dst {
			dst[i] = t[binary.LittleEndian.Uint16(src[2*i:])]
		}
		return
	}
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}

// Tokens is a read-only, memory-mapped view of a token store: one NAME.bin/NAME.json pair, or the
// parts of a sharded run (emb-part-K-of-N.tokens/NAME) merged by index. Row i is an image, in
// index order; each row holds Latents() tokens of Channels() values.
type Tokens struct {
	Meta   TokenMeta // of the first part; Shape[0], IDs, Indices and Labels cover all parts
	Paths  []string  // the .bin files
	maps   [][]byte
	rowMap []int32 // part of each row
	rowOff []int64 // byte offset of each row in its part
}

var tokenPartName = regexp.MustCompile(`^(.*)-part-(\d+)-of-(\d+)\.tokens$`)

// OpenTokens maps a token store. base is DIR/NAME; when DIR/NAME.json does not exist and DIR is
// FILE.tokens, the parts FILE-part-K-of-N.tokens/NAME of a sharded run are opened and merged by
// index: all N must be present and agree on every identity key but the shard. Sizes are checked;
// Verify checks the checksums.
func OpenTokens(base string) (*Tokens, error) {
	bin, side := TokenPaths(base)
	if _, err := os.Stat(side); err == nil {
		t := &Tokens{}
		if err := t.addPart(bin, side); err != nil {
			t.Close()
			return nil, err
		}
		t.finish()
		return t, nil
	}
	dir, name := filepath.Dir(bin), strings.TrimSuffix(filepath.Base(bin), ".bin")
	stem := strings.TrimSuffix(dir, ".tokens")
	if stem == dir {
		return nil, fmt.Errorf("%s: no such token store (want DIR/NAME with NAME.json and NAME.bin)", side)
	}
	parts, _ := filepath.Glob(globEscape(stem) + "-part-*-of-*.tokens")
	byK := map[int]string{}
	n := 0
	for _, p := range parts {
		m := tokenPartName.FindStringSubmatch(p)
		if m == nil || m[1] != stem {
			continue
		}
		k, _ := strconv.Atoi(m[2])
		nn, _ := strconv.Atoi(m[3])
		if n != 0 && nn != n {
			return nil, fmt.Errorf("%s: parts of two shardings (%d and %d shards); remove the stale ones", side, n, nn)
		}
		n = nn
		byK[k] = p
	}
	if n == 0 {
		return nil, fmt.Errorf("%s: no such token store and no shard parts %s-part-K-of-N.tokens", side, stem)
	}
	t := &Tokens{}
	for k := 1; k <= n; k++ {
		p, ok := byK[k]
		if !ok {
			t.Close()
			return nil, fmt.Errorf("%s: part %d of %d is missing", side, k, n)
		}
		b, s := TokenPaths(filepath.Join(p, name))
		if err := t.addPart(b, s); err != nil {
			t.Close()
			return nil, err
		}
	}
	t.finish()
	return t, nil
}

func (t *Tokens) addPart(bin, side string) error {
	raw, err := os.ReadFile(side)
	if err != nil {
		return err
	}
	var m TokenMeta
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("%s: not a token sidecar: %w", side, err)
	}
	if m.Format != TokensFormat {
		return fmt.Errorf("%s: format %q, want %q", side, m.Format, TokensFormat)
	}
	if (m.DType != TokensFloat16 && m.DType != TokensFloat32) || m.Shape[0] < 0 || m.Shape[1] < 1 || m.Shape[2] < 1 ||
		len(m.IDs) != m.Shape[0] || len(m.Indices) != m.Shape[0] || len(m.Latents) != m.Shape[1] ||
		(m.Labels != nil && len(m.Labels) != m.Shape[0]) {
		return fmt.Errorf("%s: damaged sidecar (dtype %q, shape %v, %d ids, %d indices, %d latents)", side, m.DType, m.Shape, len(m.IDs), len(m.Indices), len(m.Latents))
	}
	if len(t.Paths) > 0 {
		if err := sameTokenRun(&t.Meta, &m, side); err != nil {
			return err
		}
	}
	data, err := mapReadOnly(bin)
	if err != nil {
		return err
	}
	if want := int64(m.Shape[0]) * int64(m.RowBytes()); int64(len(data)) != want {
		unix.Munmap(data)
		return fmt.Errorf("%s: %d bytes, but %s says %v %s (%d bytes): damaged or from another run", bin, len(data), filepath.Base(side), m.Shape, m.DType, want)
	}
	part := int32(len(t.Paths))
	t.Paths = append(t.Paths, bin)
	t.maps = append(t.maps, data)
	for i := 0; i < m.Shape[0]; i++ {
		t.rowMap = append(t.rowMap, part)
		t.rowOff = append(t.rowOff, int64(i)*int64(m.RowBytes()))
	}
	if part == 0 {
		t.Meta = m
		t.Meta.IDs = slices.Clone(m.IDs)
		t.Meta.Indices = slices.Clone(m.Indices)
		t.Meta.Labels = slices.Clone(m.Labels)
		return nil
	}
	t.Meta.IDs = append(t.Meta.IDs, m.IDs...)
	t.Meta.Indices = append(t.Meta.Indices, m.Indices...)
	if m.Labels == nil {
		m.Labels = make([]int64, m.Shape[0])
		for i := range m.Labels {
			m.Labels[i] = -1
		}
	}
	t.Meta.Labels = append(t.Meta.Labels, m.Labels...)
	t.Meta.Shape[0] += m.Shape[0]
	return nil
}

// sameTokenRun checks that two parts come from one run: the same identity but the shard, shape
// and dtype.
func sameTokenRun(a, b *TokenMeta, side string) error {
	var diffs, keys []string
	for k, v := range a.Identity {
		if k == "shard" {
			continue
		}
		if b.Identity[k] != v {
			keys = append(keys, k)
			diffs = append(diffs, k+" "+abbrev(b.Identity[k])+" vs "+abbrev(v))
		}
	}
	if a.DType != b.DType || a.Shape[1] != b.Shape[1] || a.Shape[2] != b.Shape[2] || !slices.Equal(a.Latents, b.Latents) {
		keys = append(keys, "shape")
		diffs = append(diffs, fmt.Sprintf("shape %v %s vs %v %s", b.Shape, b.DType, a.Shape, a.DType))
	}
	if len(diffs) > 0 {
		slices.Sort(keys)
		return &RunMismatchError{Path: side, Keys: keys, details: diffs}
	}
	return nil
}

// finish orders the rows of all parts by index, and refuses an index given twice.
func (t *Tokens) finish() {
	n := len(t.Meta.IDs)
	if len(t.Paths) <= 1 && slices.IsSorted(t.Meta.Indices) {
		return
	}
	perm := make([]int, n)
	for i := range perm {
		perm[i] = i
	}
	slices.SortStableFunc(perm, func(a, b int) int { return int(t.Meta.Indices[a] - t.Meta.Indices[b]) })
	ids, idx, lab := make([]string, n), make([]int64, n), make([]int64, n)
	rm, ro := make([]int32, n), make([]int64, n)
	for i, p := range perm {
		ids[i], idx[i], rm[i], ro[i] = t.Meta.IDs[p], t.Meta.Indices[p], t.rowMap[p], t.rowOff[p]
		lab[i] = -1
		if t.Meta.Labels != nil {
			lab[i] = t.Meta.Labels[p]
		}
	}
	t.Meta.IDs, t.Meta.Indices, t.Meta.Labels, t.rowMap, t.rowOff = ids, idx, lab, rm, ro
}

// Rows is the number of images, Latents the tokens kept per image, Channels a token's width.
func (t *Tokens) Rows() int     { return t.Meta.Shape[0] }
func (t *Tokens) Latents() int  { return t.Meta.Shape[1] }
func (t *Tokens) Channels() int { return t.Meta.Shape[2] }

// Row writes image i's tokens [Latents, Channels] into dst as float32.
func (t *Tokens) Row(dst []float32, i int) {
	rb := t.Meta.RowBytes()
	off := t.rowOff[i]
	decodeTokens(dst[:t.Latents()*t.Channels()], t.maps[t.rowMap[i]][off:off+int64(rb)], t.Meta.DType)
}

// Token writes token l (the l-th kept latent, latent number Meta.Latents[l]) of image i into dst
// [Channels].
func (t *Tokens) Token(dst []float32, i, l int) {
	c := t.Channels()
	sz := dtypeSize(t.Meta.DType)
	off := t.rowOff[i] + int64(l*c*sz)
	decodeTokens(dst[:c], t.maps[t.rowMap[i]][off:off+int64(c*sz)], t.Meta.DType)
}

// Verify recomputes each part's CRC-32C and compares it with its sidecar.
func (t *Tokens) Verify() error {
	for p, data := range t.maps {
		side := strings.TrimSuffix(t.Paths[p], ".bin") + ".json"
		raw, err := os.ReadFile(side)
		if err != nil {
			return err
		}
		var m TokenMeta
		if err := json.Unmarshal(raw, &m); err != nil {
			return fmt.Errorf("%s: %w", side, err)
		}
		if got := fmt.Sprintf("%08x", crc32.Checksum(data, castagnoli)); got != m.CRC32C {
			return fmt.Errorf("%s: checksum %s, sidecar says %s: the file is damaged", t.Paths[p], got, m.CRC32C)
		}
	}
	return nil
}

// Close unmaps the files; rows read before stay valid (they are copies).
func (t *Tokens) Close() error {
	var first error
	for _, d := range t.maps {
		if len(d) > 0 {
			if err := unix.Munmap(d); err != nil && first == nil {
				first = err
			}
		}
	}
	t.maps = nil
	return first
}

// mapReadOnly maps a whole regular file (an empty one gives an empty slice).
func mapReadOnly(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if st.Size() == 0 {
		return []byte{}, nil
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("%s: mmap: %w", path, err)
	}
	unix.Madvise(data, unix.MADV_RANDOM)
	return data, nil
}

package probe

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
	"strconv"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/flight"
	"github.com/apache/arrow/go/v15/arrow/memory"
)

// MetaChecksums holds the file's checksums: a JSON object mapping each
// column's name to the CRC-32C of its values in row order, and "" to the
// CRC-32C of the other key-value metadata. arrow/go v15 can neither write
// nor verify Parquet's own page CRCs, so the store keeps these instead:
// they cover the decoded content, so a flipped byte anywhere in the pages,
// or in our metadata, that changes what is read is reported.
const MetaChecksums = "probe.crc32c"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// sumColumn extends crc with the values of a store column, as read back:
// strings and int64 with a null marker, vectors as their float32 bits.
// scratch is reused between calls.
func sumColumn(crc uint32, a arrow.Array, scratch *[]byte) uint32 {
	b := (*scratch)[:0]
	switch a := a.(type) {
	case *array.String:
		for i := 0; i < a.Len(); i++ {
			if a.IsNull(i) {
				b = append(b, 0)
				continue
			}
			v := a.Value(i)
			b = append(b, 1)
			b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
			b = append(b, v...)
		}
	case *array.Int64:
		for i := 0; i < a.Len(); i++ {
			if a.IsNull(i) {
				b = append(b, 0)
				continue
			}
			b = append(b, 1)
			b = binary.LittleEndian.AppendUint64(b, uint64(a.Value(i)))
		}
	case *array.FixedSizeList:
		dim := int(a.DataType().(*arrow.FixedSizeListType).Len())
		if vals, ok := a.ListValues().(*array.Float32); ok {
			all := vals.Float32Values()
			start := a.Data().Offset() * dim
			end := min(len(all), start+a.Len()*dim)
			*scratch = b
			return crc32.Update(crc, castagnoli, arrow.Float32Traits.CastToBytes(all[start:end]))
		}
	}
	*scratch = b
	return crc32.Update(crc, castagnoli, b)
}

// sumMetadata is the CRC-32C of the key-value metadata other than the
// checksums themselves, in key order. It covers arrow's serialized schema
// too (metaArrowSchema): arrow/go trusts the sizes in it, and a flipped byte
// there made it allocate hundreds of gigabytes, so it is checked first.
func sumMetadata(meta map[string]string) uint32 {
	var b []byte
	for _, k := range sortedKeys(meta) {
		if k == MetaChecksums {
			continue
		}
		b = binary.LittleEndian.AppendUint32(b, uint32(len(k)))
		b = append(b, k...)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(meta[k])))
		b = append(b, meta[k]...)
	}
	return crc32.Checksum(b, castagnoli)
}

// checksums accumulates one CRC per column of a schema.
type checksums struct {
	names   []string
	sums    []uint32
	scratch []byte
}

func newChecksums(names []string) *checksums {
	return &checksums{names: names, sums: make([]uint32, len(names))}
}

// add extends column j with the values of a.
func (c *checksums) add(j int, a arrow.Array) {
	c.sums[j] = sumColumn(c.sums[j], a, &c.scratch)
}

// encode renders the checksums with the metadata's for MetaChecksums.
func (c *checksums) encode(meta map[string]string) string {
	m := make(map[string]string, len(c.names)+1)
	for j, n := range c.names {
		m[n] = strconv.FormatUint(uint64(c.sums[j]), 16)
	}
	m[""] = strconv.FormatUint(uint64(sumMetadata(meta)), 16)
	js, _ := json.Marshal(m)
	return string(js)
}

// parseChecksums reads MetaChecksums; nil when the file has none (written
// before checksums were stored).
func parseChecksums(path string, meta map[string]string) (map[string]uint32, error) {
	js, ok := meta[MetaChecksums]
	if !ok {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(js), &m); err != nil {
		return nil, fmt.Errorf("%s: metadata %q: %v: damaged file", path, MetaChecksums, err)
	}
	out := make(map[string]uint32, len(m))
	for k, v := range m {
		x, err := strconv.ParseUint(v, 16, 32)
		if err != nil || x > math.MaxUint32 {
			return nil, fmt.Errorf("%s: metadata %q: bad checksum %q: damaged file", path, MetaChecksums, v)
		}
		out[k] = uint32(x)
	}
	if want, ok := out[""]; ok && want != sumMetadata(meta) {
		return nil, fmt.Errorf("%s: the key-value metadata fails its checksum: damaged file", path)
	}
	return out, nil
}

// verify compares the sums of the named columns with a file's checksums.
func (c *checksums) verify(path string, want map[string]uint32) error {
	if want == nil {
		return nil
	}
	for j, n := range c.names {
		w, ok := want[n]
		if !ok {
			return fmt.Errorf("%s: no checksum for column %s: damaged file", path, n)
		}
		if w != c.sums[j] {
			return fmt.Errorf("%s: column %s fails its checksum (crc32c %08x, stored %08x): damaged file", path, n, c.sums[j], w)
		}
	}
	return nil
}

// metaArrowSchema is the key under which pqarrow stores the arrow schema.
const metaArrowSchema = "ARROW:schema"

// storedSchema is the value pqarrow.WithStoreSchema writes for schema.
func storedSchema(schema *arrow.Schema) string {
	return base64.StdEncoding.EncodeToString(flight.SerializeSchema(schema, memory.DefaultAllocator))
}

func fieldNames(s *arrow.Schema) []string {
	names := make([]string, len(s.Fields()))
	for i, f := range s.Fields() {
		names[i] = f.Name
	}
	return slices.Clip(names)
}

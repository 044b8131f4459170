package serve

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"hash/crc32"
	"testing"
)

// bombPNG is a valid 8-bit grey PNG of side×side black pixels: about a kilobyte per megapixel
// that decodes to side² bytes. All its raw data are zeros, so the zlib stream is built from one
// compressed megabyte of zeros repeated (each copy ends on a sync flush and refers to nothing
// before it), and the Adler-32 of n zeros is (n mod 65521)<<16 | 1: the test never holds or
// compresses the whole image, which matters under the race detector.
func bombPNG(t *testing.T, side int) []byte {
	t.Helper()
	raw := (side + 1) * side // a filter byte per row, then the pixels
	const chunk = 1 << 20
	compress := func(n int, final bool) []byte {
		var b bytes.Buffer
		w, _ := flate.NewWriter(&b, flate.BestCompression)
		w.Write(make([]byte, n))
		if final {
			w.Close()
		} else {
			w.Flush()
		}
		return b.Bytes()
	}
	idat := []byte{0x78, 0xda} // zlib header: deflate, 32 kB window, best compression
	seg := compress(chunk, false)
	for range raw / chunk {
		idat = append(idat, seg...)
	}
	idat = append(idat, compress(raw%chunk, true)...)
	idat = binary.BigEndian.AppendUint32(idat, uint32(raw%65521)<<16|1)

	var out bytes.Buffer
	out.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], uint32(side))
	binary.BigEndian.PutUint32(ihdr[4:], uint32(side))
	ihdr[8], ihdr[9] = 8, 0 // 8-bit greyscale
	writeChunk(&out, "IHDR", ihdr)
	writeChunk(&out, "IDAT", idat)
	writeChunk(&out, "IEND", nil)
	return out.Bytes()
}

// TestBombPNGIsValid decodes a small bomb made the same way, so the refusal tested in TestUpload
// is of a real image and not of a malformed file.
func TestBombPNGIsValid(t *testing.T) {
	data := bombPNG(t, 1100) // 1.2 MB of raw data: two segments and a remainder
	img, err := pngDecode(data)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 1100 || b.Dy() != 1100 {
		t.Fatalf("bounds %v", b)
	}
}

// writeChunk appends a PNG chunk: length, type, data, CRC of type and data.
func writeChunk(out *bytes.Buffer, typ string, data []byte) {
	out.Write(binary.BigEndian.AppendUint32(nil, uint32(len(data))))
	out.WriteString(typ)
	out.Write(data)
	crc := crc32.NewIEEE()
	crc.Write([]byte(typ))
	crc.Write(data)
	out.Write(binary.BigEndian.AppendUint32(nil, crc.Sum32()))
}

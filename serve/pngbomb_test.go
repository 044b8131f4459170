package serve

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"hash/crc32"
	"io"
)

func zlibWriter(w io.Writer) (*zlib.Writer, error) { return zlib.NewWriterLevel(w, zlib.BestCompression) }

func putU32(b []byte, v uint32) { binary.BigEndian.PutUint32(b, v) }

// writeChunk appends a PNG chunk: length, type, data, CRC of type and data.
func writeChunk(out *bytes.Buffer, typ string, data []byte) {
	var n [4]byte
	putU32(n[:], uint32(len(data)))
	out.Write(n[:])
	out.WriteString(typ)
	out.Write(data)
	crc := crc32.NewIEEE()
	crc.Write([]byte(typ))
	crc.Write(data)
	putU32(n[:], crc.Sum32())
	out.Write(n[:])
}

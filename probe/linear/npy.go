package linear

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// WriteNPY writes data as a NumPy .npy file, format version 1.0, dtype '<f4', C order, with the
// given shape (its product must equal len(data)).
func WriteNPY(w io.Writer, data []float32, shape ...int) error {
	if err := writeNPYHeader(w, "<f4", len(data), shape); err != nil {
		return err
	}
	buf := make([]byte, 0, 4*min(len(data), 1<<16))
	for lo := 0; lo < len(data); lo += 1 << 16 {
		buf = buf[:0]
		for _, v := range data[lo:min(lo+1<<16, len(data))] {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		}
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("linear: writing npy data: %w", err)
		}
	}
	return nil
}

// WriteNPYInt64 writes data as a NumPy .npy file, format version 1.0, dtype '<i8', C order.
func WriteNPYInt64(w io.Writer, data []int64, shape ...int) error {
	if err := writeNPYHeader(w, "<i8", len(data), shape); err != nil {
		return err
	}
	buf := make([]byte, 0, 8*min(len(data), 1<<15))
	for lo := 0; lo < len(data); lo += 1 << 15 {
		buf = buf[:0]
		for _, v := range data[lo:min(lo+1<<15, len(data))] {
			buf = binary.LittleEndian.AppendUint64(buf, uint64(v))
		}
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("linear: writing npy data: %w", err)
		}
	}
	return nil
}

// writeNPYHeader writes the magic, version 1.0, and the header dict padded with spaces and a final
// newline so that the data starts at a multiple of 64 bytes, as numpy does.
func writeNPYHeader(w io.Writer, descr string, n int, shape []int) error {
	prod := 1
	dims := make([]string, len(shape))
	for i, s := range shape {
		if s < 0 {
			return fmt.Errorf("linear: npy shape %v has a negative dimension", shape)
		}
		prod *= s
		dims[i] = strconv.Itoa(s)
	}
	if prod != n {
		return fmt.Errorf("linear: npy shape %v holds %d values, data has %d", shape, prod, n)
	}
	tuple := "(" + strings.Join(dims, ", ")
	if len(shape) == 1 {
		tuple += ","
	}
	tuple += ")"
	dict := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, tuple)
	if len(shape) > 0 {
		// numpy (≥ 1.23) leaves room for the first dimension to grow to 21 digits in place; doing
		// the same makes our files byte-identical to np.save's.
		dict += strings.Repeat(" ", max(0, 21-len(dims[0])))
	}
	const preamble = 10 // magic (6) + version (2) + header length (2)
	total := (preamble + len(dict) + 1 + 63) / 64 * 64
	header := dict + strings.Repeat(" ", total-preamble-len(dict)-1) + "\n"
	if len(header) > math.MaxUint16 {
		return fmt.Errorf("linear: npy header too long for format 1.0 (%d bytes)", len(header))
	}
	b := make([]byte, 0, total)
	b = append(b, "\x93NUMPY\x01\x00"...)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(header)))
	b = append(b, header...)
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("linear: writing npy header: %w", err)
	}
	return nil
}

// WriteNPYHeader writes the header of a .npy file (format version 1.0, C order) of the given
// dtype descr ('<f4', '<f2', '<i8', …) and shape, for a caller that streams the data after it.
func WriteNPYHeader(w io.Writer, descr string, shape ...int) error {
	n := 1
	for _, s := range shape {
		n *= s
	}
	return writeNPYHeader(w, descr, n, shape)
}

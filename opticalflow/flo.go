package opticalflow

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/perceiverkit/perceiver/internal/outfile"
)

// floMagic is the float32 that opens a .flo file; its bytes read "PIEH".
const floMagic float32 = 202021.25

// Field is a flow field in pixels, [H, W, 2] row-major (see the package conventions).
type Field struct {
	H, W int
	UV   []float32
}

// At returns the flow at row y, column x.
func (f *Field) At(y, x int) (u, v float32) {
	i := 2 * (y*f.W + x)
	return f.UV[i], f.UV[i+1]
}

// WriteFlo writes f to w in Middlebury's .flo format.
func WriteFlo(w io.Writer, f *Field) error {
	if len(f.UV) != 2*f.H*f.W {
		return fmt.Errorf("flo: field of %d values for %d×%d", len(f.UV), f.H, f.W)
	}
	bw := bufio.NewWriter(w)
	head := []any{floMagic, int32(f.W), int32(f.H)}
	for _, v := range head {
		if err := binary.Write(bw, binary.LittleEndian, v); err != nil {
			return err
		}
	}
	buf := make([]byte, 4)
	for _, v := range f.UV {
		binary.LittleEndian.PutUint32(buf, math.Float32bits(v))
		if _, err := bw.Write(buf); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// ReadFlo reads a Middlebury .flo stream.
func ReadFlo(r io.Reader) (*Field, error) {
	var magic float32
	var w, h int32
	for _, v := range []any{&magic, &w, &h} {
		if err := binary.Read(r, binary.LittleEndian, v); err != nil {
			return nil, fmt.Errorf("flo: header: %w", err)
		}
	}
	if magic != floMagic {
		return nil, fmt.Errorf("flo: magic %v, want %v (not a .flo file)", magic, floMagic)
	}
	if w < 1 || h < 1 || int64(w)*int64(h) > 1<<28 {
		return nil, fmt.Errorf("flo: implausible size %d×%d", w, h)
	}
	f := &Field{H: int(h), W: int(w), UV: make([]float32, 2*int(w)*int(h))}
	if err := binary.Read(r, binary.LittleEndian, f.UV); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("flo: %d×%d values: %w", w, h, err)
	}
	return f, nil
}

// SaveFlo writes f to a .flo file. A failed write removes the partial file.
func SaveFlo(path string, f *Field) error {
	return outfile.Write(path, func(w io.Writer) error { return WriteFlo(w, f) })
}

// LoadFlo reads a .flo file.
func LoadFlo(path string) (*Field, error) {
	in, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	f, err := ReadFlo(bufio.NewReader(in))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

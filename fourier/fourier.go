package fourier

import (
	"fmt"
	"math"
)

// Spec describes the position features of a two-dimensional grid.
type Spec struct {
	// MaxResolution is the resolution the frequencies are scaled to, per axis (height, width).
	MaxResolution [2]int
	// NumBands is the number of frequency bands per axis.
	NumBands int
}

// Channels is the number of features per position: 2 raw positions plus sin and cos of every band
// of both axes.
func (s Spec) Channels() int { return 2 + 2*2*s.NumBands }

// Validate reports whether the spec can produce features.
// Axis reports which coordinate channel c of the features depends on: 0 for the row (y), 1 for
// the column (x). Every channel depends on exactly one, so a linear function of the features of
// pixel (u, v) is a function of u plus a function of v, which the encoder's attention exploits.
func (s Spec) Axis(c int) int {
	nb := s.NumBands
	switch {
	case c < 2:
		return c // the coordinates themselves
	case c < 2+2*nb:
		return (c - 2) / nb // sines, y bands then x bands
	default:
		return (c - 2 - 2*nb) / nb // cosines, likewise
	}
}

func (s Spec) Validate() error {
	if s.NumBands < 1 {
		return fmt.Errorf("fourier: number of bands %d must be at least 1", s.NumBands)
	}
	if s.MaxResolution[0] < 1 || s.MaxResolution[1] < 1 {
		return fmt.Errorf("fourier: max resolution %v must be positive", s.MaxResolution)
	}
	return nil
}

// Linspace writes n float32 values evenly spaced from start to stop into dst, computed the way
// PyTorch's CPU kernel does (float32 step; the first half counted up from start, the second half
// counted down from stop), so that the values match torch.linspace bit for bit.
func Linspace(dst []float32, start, stop float32) {
	n := len(dst)
	switch n {
	case 0:
		return
	case 1:
		dst[0] = start
		return
	}
	step := float32(float32(stop-start) / float32(n-1))
	half := n / 2
	for i := range dst {
		if i < half {
			dst[i] = start + float32(step*float32(i))
		} else {
			dst[i] = stop - float32(step*float32(n-1-i))
		}
	}
}

// Features writes the position features of an h×w grid into dst, which must hold
// h*w*s.Channels() values laid out [h*w, s.Channels()]. It panics if dst has the wrong length.
func Features(dst []float32, h, w int, s Spec) {
	c := s.Channels()
	if len(dst) != h*w*c {
		panic(fmt.Sprintf("fourier: dst has %d values, want %d×%d×%d", len(dst), h, w, c))
	}
	ys := make([]float32, h)
	xs := make([]float32, w)
	Linspace(ys, -1, 1)
	Linspace(xs, -1, 1)
	nb := s.NumBands
	freqs := make([]float32, 2*nb)
	Linspace(freqs[:nb], 1, float32(s.MaxResolution[0])/2)
	Linspace(freqs[nb:], 1, float32(s.MaxResolution[1])/2)
	pi := float32(math.Pi)
	for r := 0; r < h; r++ {
		for col := 0; col < w; col++ {
			f := dst[(r*w+col)*c : (r*w+col+1)*c]
			pos := [2]float32{ys[r], xs[col]}
			f[0], f[1] = pos[0], pos[1]
			sin := f[2 : 2+2*nb]
			cos := f[2+2*nb:]
			for a := 0; a < 2; a++ {
				for b := 0; b < nb; b++ {
					// Rounded to float32 at each step, as PyTorch does: (p·f), then π·(p·f).
					arg := float64(pi * float32(pos[a]*freqs[a*nb+b]))
					sin[a*nb+b] = float32(math.Sin(arg))
					cos[a*nb+b] = float32(math.Cos(arg))
				}
			}
		}
	}
}

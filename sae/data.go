package sae

import (
	"fmt"
	"math"

	"github.com/perceiverkit/perceiver/probe"
)

// Data is what an autoencoder learns from: Units() images, each contributing PerUnit() samples
// of Dim() values. Sample s is sample s mod PerUnit() of unit s / PerUnit(). Read must be safe
// for concurrent use.
type Data interface {
	Units() int
	PerUnit() int
	Dim() int
	UnitID(u int) string
	// Read writes sample s into dst [Dim()].
	Read(dst []float32, s int)
}

// Matrix is in-memory data, one sample per unit: a Parquet column.
type Matrix struct {
	X   []float32 // [len(IDs), D]
	D   int
	IDs []string
}

func (m *Matrix) Units() int                { return len(m.IDs) }
func (m *Matrix) PerUnit() int              { return 1 }
func (m *Matrix) Dim() int                  { return m.D }
func (m *Matrix) UnitID(u int) string       { return m.IDs[u] }
func (m *Matrix) Read(dst []float32, s int) { copy(dst[:m.D], m.X[s*m.D:(s+1)*m.D]) }

// TokenData is a token store read through its memory map: each kept latent token of each image
// is a sample, so data larger than memory streams from disk.
type TokenData struct{ T *probe.Tokens }

func (t TokenData) Units() int                { return t.T.Rows() }
func (t TokenData) PerUnit() int              { return t.T.Latents() }
func (t TokenData) Dim() int                  { return t.T.Channels() }
func (t TokenData) UnitID(u int) string       { return t.T.Meta.IDs[u] }
func (t TokenData) Read(dst []float32, s int) { t.T.Token(dst, s/t.PerUnit(), s%t.PerUnit()) }

// CheckFinite reads every sample once and names the first NaN or Inf.
func CheckFinite(data Data) error {
	buf := make([]float32, data.Dim())
	n := data.Units() * data.PerUnit()
	for s := 0; s < n; s++ {
		data.Read(buf, s)
		for c, v := range buf {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("row %q (sample %d) holds %v at channel %d", data.UnitID(s/data.PerUnit()), s%data.PerUnit(), v, c)
			}
		}
	}
	return nil
}

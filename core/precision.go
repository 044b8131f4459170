package core

import (
	"errors"

	"github.com/perceiverkit/perceiver/internal/sgemm"
)

// Precision is the precision of the model's matrix products by its weights and of the
// self-attention and decoder attention products (see Options).
type Precision = sgemm.Precision

const (
	// Float32 products: the default, Hugging Face's numerics (parity to 1e-5).
	Float32 = sgemm.Float32
	// BF16 products: operands rounded to bfloat16 (round to nearest even) as they are packed,
	// float32 accumulation; softmax, LayerNorm, GELU, residuals and every stored tensor stay
	// float32. The encoder's specialised cross-attention score products stay float32.
	BF16 = sgemm.BFloat16
)

// Options are the numerics a model runs with, chosen once (weights are packed for them).
type Options struct {
	Precision Precision
}

// ErrBackwardPrecision is returned by the backward pass of a model set to bfloat16 products:
// gradients are defined for the float32 forward pass only.
var ErrBackwardPrecision = errors.New("the backward pass runs in float32 only: open the model without --precision bf16")

// SetOptions repacks the model's weights for o. Not safe to call during Forward.
func (m *Model) SetOptions(o Options) error {
	switch o.Precision {
	case Float32, BF16:
	default:
		return errors.New("core: unknown precision " + o.Precision.String())
	}
	m.Weights.eachLinear(func(l *Linear) {
		l.precision = o.Precision
		l.prepack()
	})
	m.precision = o.Precision
	return nil
}

// Options reports the numerics the model runs with.
func (m *Model) Options() Options { return Options{Precision: m.precision} }

// BF16Kernel names the kernel bfloat16 products run on ("avx512bf16", or "bf16-generic", the
// portable definition, slow) and the CPU features whose absence leaves the portable one.
func BF16Kernel() (name string, missing []string) { return sgemm.BF16Kernel() }

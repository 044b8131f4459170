package core

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Representation is one per-image vector extracted from a forward pass: a hidden state reduced
// over latents (mean or max), the decoder output, or the logits.
//
// Names: `cross_mean` / `cross_max` (the state after the cross-attention), `block{b}_mean` /
// `block{b}_max` (after block b, 1-based), `layer{j}_mean` / `layer{j}_max` (after self-attention
// application j, 1-based), `decoder` (the decoder output before the final layer), `logits`.
type Representation struct {
	Name   string
	State  int    // hidden-state index (0 = after the cross-attention); -1 for decoder and logits
	Reduce string // "mean" or "max" for hidden states; "" otherwise
	Dim    int
}

// Depth orders representations from input to output: the hidden-state index, then decoder, logits.
func (r Representation) Depth() int {
	switch r.Name {
	case "decoder":
		return math.MaxInt - 1
	case "logits":
		return math.MaxInt
	}
	return r.State
}

// Description says in words what the representation is, for file metadata and reports.
func (r Representation) Description(c *Config) string {
	switch {
	case r.Name == "decoder":
		return fmt.Sprintf("decoder output before the final linear layer, %d floats", r.Dim)
	case r.Name == "logits":
		return fmt.Sprintf("classification logits over %d labels (before softmax)", r.Dim)
	case r.State == 0:
		return fmt.Sprintf("%s over the %d latents after the encoder cross-attention, %d floats", r.Reduce, c.NumLatents, r.Dim)
	default:
		return fmt.Sprintf("%s over the %d latents after self-attention application %d of %d (block %d, layer %d), %d floats",
			r.Reduce, c.NumLatents, r.State, c.NumSelfAttentionApplications(),
			(r.State-1)/c.NumSelfAttendsPerBlock+1, (r.State-1)%c.NumSelfAttendsPerBlock+1, r.Dim)
	}
}

// DefaultRepresentations is what extraction keeps unless told otherwise: the decoder output and the
// mean latent after the last block.
func (c *Config) DefaultRepresentations() string {
	return "decoder,block" + strconv.Itoa(c.NumBlocks) + "_mean"
}

// ParseRepresentations reads a comma-separated list of representation names. "all" stands for
// cross_mean, every block{b}_mean, decoder and logits.
func (c *Config) ParseRepresentations(list string) ([]Representation, error) {
	var names []string
	for _, n := range strings.Split(list, ",") {
		n = strings.TrimSpace(n)
		if n == "all" {
			names = append(names, "cross_mean")
			for b := 1; b <= c.NumBlocks; b++ {
				names = append(names, "block"+strconv.Itoa(b)+"_mean")
			}
			names = append(names, "decoder", "logits")
		} else if n != "" {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no representation named in %q", list)
	}
	var out []Representation
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			continue
		}
		seen[n] = true
		r, err := c.representation(n)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func (c *Config) representation(name string) (Representation, error) {
	switch name {
	case "decoder":
		return Representation{Name: name, State: -1, Dim: c.DLatents}, nil
	case "logits":
		return Representation{Name: name, State: -1, Dim: c.NumLabels()}, nil
	}
	base, reduce, ok := strings.Cut(name, "_")
	if !ok || (reduce != "mean" && reduce != "max") {
		return Representation{}, fmt.Errorf("representation %q: want cross_, block{b}_ or layer{j}_ followed by mean or max, or decoder, logits, all", name)
	}
	r := Representation{Name: name, Reduce: reduce, Dim: c.DLatents}
	apps := c.NumSelfAttentionApplications()
	switch {
	case base == "cross":
		r.State = 0
	case strings.HasPrefix(base, "block"):
		b, err := strconv.Atoi(base[len("block"):])
		if err != nil || b < 1 || b > c.NumBlocks {
			return Representation{}, fmt.Errorf("representation %q: block must be 1…%d", name, c.NumBlocks)
		}
		r.State = b * c.NumSelfAttendsPerBlock
	case strings.HasPrefix(base, "layer"):
		j, err := strconv.Atoi(base[len("layer"):])
		if err != nil || j < 1 || j > apps {
			return Representation{}, fmt.Errorf("representation %q: layer must be 1…%d", name, apps)
		}
		r.State = j
	default:
		return Representation{}, fmt.Errorf("representation %q: unknown; want cross_, block{b}_, layer{j}_ (mean or max), decoder, logits or all", name)
	}
	return r, nil
}

// Extract runs the model on a batch and returns, for each representation, a [batch, Dim] matrix.
// Hidden states are reduced as the pass goes, so nothing else is kept.
func (m *Model) Extract(pixels []float32, batch, h, w int, reps []Representation) ([][]float32, *Output, error) {
	vecs := make([][]float32, len(reps))
	byState := map[int][]int{}
	tr := Trace{}
	for i, r := range reps {
		vecs[i] = make([]float32, batch*r.Dim)
		if r.State >= 0 {
			byState[r.State] = append(byState[r.State], i)
		}
		if r.Name == "decoder" {
			tr.DecoderOutput = true
		}
	}
	L, D := m.Config.NumLatents, m.Config.DLatents
	if len(byState) > 0 {
		tr.OnHiddenState = func(state int, hidden []float32) {
			for _, i := range byState[state] {
				for b := 0; b < batch; b++ {
					ReduceLatents(vecs[i][b*D:(b+1)*D], hidden[b*L*D:(b+1)*L*D], L, reps[i].Reduce)
				}
			}
		}
	}
	out, err := m.Forward(pixels, batch, h, w, tr)
	if err != nil {
		return nil, nil, err
	}
	for i, r := range reps {
		switch r.Name {
		case "decoder":
			copy(vecs[i], out.DecoderOutput)
		case "logits":
			copy(vecs[i], out.Logits)
		}
	}
	return vecs, out, nil
}

// ReduceLatents writes the mean or the max over the rows of latents [rows, len(dst)] into dst. The
// mean is accumulated in float64.
func ReduceLatents(dst, latents []float32, rows int, how string) {
	d := len(dst)
	switch how {
	case "mean":
		acc := make([]float64, d)
		for r := 0; r < rows; r++ {
			for c, v := range latents[r*d : (r+1)*d] {
				acc[c] += float64(v)
			}
		}
		for c := range dst {
			dst[c] = float32(acc[c] / float64(rows))
		}
	case "max":
		copy(dst, latents[:d])
		for r := 1; r < rows; r++ {
			for c, v := range latents[r*d : (r+1)*d] {
				if v > dst[c] {
					dst[c] = v
				}
			}
		}
	default:
		panic("core: unknown reduction " + how)
	}
}

package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/perceiverkit/perceiver/core"
	"github.com/perceiverkit/perceiver/probe"
)

// tokenLayer is one hidden state whose per-latent tokens extract --tokens stores.
type tokenLayer struct {
	name  string // cross, block{b}, layer{j}
	state int
}

// parseTokenLayers reads --tokens: cross, block{b} (1-based) and layer{j} (1-based application).
func parseTokenLayers(list string, c *core.Config) ([]tokenLayer, error) {
	var out []tokenLayer
	seen := map[int]bool{}
	for _, n := range strings.Split(list, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		var st int
		switch {
		case n == "cross":
			st = 0
		case strings.HasPrefix(n, "block"):
			b, err := strconv.Atoi(n[len("block"):])
			if err != nil || b < 1 || b > c.NumBlocks {
				return nil, fmt.Errorf("--tokens %q: block must be block1…block%d", n, c.NumBlocks)
			}
			st = b * c.NumSelfAttendsPerBlock
		case strings.HasPrefix(n, "layer"):
			j, err := strconv.Atoi(n[len("layer"):])
			if err != nil || j < 1 || j > c.NumSelfAttentionApplications() {
				return nil, fmt.Errorf("--tokens %q: layer must be layer1…layer%d", n, c.NumSelfAttentionApplications())
			}
			st = j
		default:
			return nil, fmt.Errorf("--tokens %q: want cross, block{b} or layer{j}", n)
		}
		if seen[st] {
			continue // block{b} and layer{j} may name one state
		}
		seen[st] = true
		out = append(out, tokenLayer{n, st})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--tokens %q names no layer", list)
	}
	return out, nil
}

// tokenSink receives the kept latents of each token layer while extract runs.
type tokenSink struct {
	layers  []tokenLayer
	latents []int // kept latent indices
	writers []*probe.TokenWriter
}

// done reports whether every token store holds the item.
func (s *tokenSink) done(id string) bool {
	if s == nil {
		return true
	}
	for _, w := range s.writers {
		if !w.Done(id) {
			return false
		}
	}
	return true
}

// extractBatch is core.Model.Extract plus, when sink is set, the per-latent tokens of its layers
// for each image ([batch][layer][kept latents × D]).
func extractBatch(m *core.Model, px []float32, batch, h, w int, reps []core.Representation, sink *tokenSink) ([][]float32, [][][]float32, error) {
	if sink == nil {
		vecs, _, err := m.Extract(px, batch, h, w, reps)
		return vecs, nil, err
	}
	L, D := m.Config.NumLatents, m.Config.DLatents
	vecs := make([][]float32, len(reps))
	byState := map[int][]int{}
	tr := core.Trace{}
	for i, r := range reps {
		vecs[i] = make([]float32, batch*r.Dim)
		if r.State >= 0 {
			byState[r.State] = append(byState[r.State], i)
		}
		if r.Name == "decoder" {
			tr.DecoderOutput = true
		}
	}
	toks := make([][][]float32, batch)
	for b := range toks {
		toks[b] = make([][]float32, len(sink.layers))
	}
	tr.OnHiddenState = func(state int, hidden []float32) {
		for _, i := range byState[state] {
			for b := 0; b < batch; b++ {
				core.ReduceLatents(vecs[i][b*D:(b+1)*D], hidden[b*L*D:(b+1)*L*D], L, reps[i].Reduce)
			}
		}
		for li, tl := range sink.layers {
			if tl.state != state {
				continue
			}
			for b := 0; b < batch; b++ {
				row := make([]float32, len(sink.latents)*D)
				for k, l := range sink.latents {
					copy(row[k*D:(k+1)*D], hidden[(b*L+l)*D:(b*L+l+1)*D])
				}
				toks[b][li] = row
			}
		}
	}
	out, err := m.Forward(px, batch, h, w, tr)
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
	return vecs, toks, nil
}

// openTokenSink opens one token store per layer in FILE.tokens/ (the part's own folder when
// sharded), with the Parquet run's identity plus the token options.
func openTokenSink(parquetPath string, m *core.Model, model string, meta map[string]string, identity []string,
	layers []tokenLayer, latents []int, dtype string, resume bool, stderr io.Writer) (*tokenSink, error) {
	dir := probe.TokensDir(parquetPath)
	id := map[string]string{}
	for _, k := range identity {
		if k != "layers" {
			id[k] = meta[k]
		}
	}
	keep := map[string]string{}
	for _, k := range []string{"model", "weights", "source", "source.path", "program", "created"} {
		if v, ok := meta[k]; ok {
			keep[k] = v
		}
	}
	if st, err := os.Stat(model); err == nil && st.IsDir() {
		model = resolvedPath(model) // the sidecar leads sae train and features back to the model from anywhere
	}
	s := &tokenSink{layers: layers, latents: latents}
	for _, tl := range layers {
		tm := probe.TokenMeta{
			Name: tl.name, Layer: tl.name, State: tl.state, DType: dtype,
			Shape: [3]int{0, len(latents), m.Config.DLatents}, Latents: latents,
			Model: model, Shard: meta["shard"], Identity: id, Metadata: keep,
		}
		w, err := probe.CreateTokens(filepath.Join(dir, tl.name), tm, probe.TokenWriterOptions{
			Resume: resume,
			Notify: func(msg string) { fmt.Fprintln(stderr, "probe extract:", msg) },
		})
		if err != nil {
			s.abort()
			return nil, err
		}
		s.writers = append(s.writers, w)
	}
	return s, nil
}

func (s *tokenSink) write(it probe.Item, rows [][]float32) error {
	label := int64(-1)
	if it.HasLabel {
		label = it.Label
	}
	for i, w := range s.writers {
		if w.Done(it.ID) {
			continue
		}
		if err := checkFinite("tokens "+s.layers[i].name, rows[i]); err != nil {
			return fmt.Errorf("%s: %w; stopped before writing it (finished rows kept for --resume)", it.ID, err)
		}
		if err := w.Write(int64(it.Index), it.ID, label, rows[i]); err != nil {
			return err
		}
	}
	return nil
}

func (s *tokenSink) abort() error {
	if s == nil {
		return nil
	}
	var first error
	for _, w := range s.writers {
		if err := w.Abort(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (s *tokenSink) discard() {
	if s == nil {
		return
	}
	for _, w := range s.writers {
		w.Discard()
	}
}

func (s *tokenSink) close(stdout io.Writer) error {
	if s == nil {
		return nil
	}
	for i, w := range s.writers {
		if err := w.Close(); err != nil {
			for _, o := range s.writers[i+1:] {
				o.Abort()
			}
			return err
		}
		st, err := os.Stat(w.Path())
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s: %d rows × %d latents × %d channels, %s (%.1f MB)\n", w.Path(), w.Rows(), len(s.latents), w.Channels(), w.DType(), float64(st.Size())/1e6)
	}
	return nil
}

package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/perceiverkit/perceiver/core/weights"
)

// Checkpoint is everything a run needs to continue exactly: every tensor of the model (trained
// or not), the optimiser's moments and step count, the run's State, and the Identity of the run
// that wrote it.
type Checkpoint struct {
	Identity map[string]string
	State    State
	AdamT    int
	Tensors  map[string][]float32 // the model's state dict (HF names) at State.Step
	Shapes   map[string][]int
	M, V     map[string][]float32 // moments of the trained parameters
}

const (
	ckptState    = "train.state"
	ckptIdentity = "train.identity"
	ckptAdamT    = "train.adam_t"
	ckptModel    = "model."
	ckptM        = "adam.m."
	ckptV        = "adam.v."
)

// Save writes the checkpoint to path atomically (temporary file, synced, renamed): a run killed
// at any moment leaves the previous checkpoint or this one.
func (c *Checkpoint) Save(path string) error {
	st, err := json.Marshal(c.State)
	if err != nil {
		return err
	}
	id, err := json.Marshal(c.Identity)
	if err != nil {
		return err
	}
	var ts []*weights.Tensor
	names := make([]string, 0, len(c.Tensors))
	for n := range c.Tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ts = append(ts, &weights.Tensor{Name: ckptModel + n, DType: "F32", Shape: c.Shapes[n], Data: c.Tensors[n]})
		if m, ok := c.M[n]; ok {
			ts = append(ts, &weights.Tensor{Name: ckptM + n, DType: "F32", Shape: c.Shapes[n], Data: m})
			ts = append(ts, &weights.Tensor{Name: ckptV + n, DType: "F32", Shape: c.Shapes[n], Data: c.V[n]})
		}
	}
	md := map[string]string{ckptState: string(st), ckptIdentity: string(id), ckptAdamT: fmt.Sprint(c.AdamT)}
	return weights.WriteSafetensors(path, ts, md)
}

// ErrNoCheckpoint marks a --resume without a checkpoint to resume from.
var ErrNoCheckpoint = errors.New("no checkpoint to resume from")

// LoadCheckpoint reads a checkpoint Save wrote. Its tensors are copies (the file is closed).
func LoadCheckpoint(path string) (*Checkpoint, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrNoCheckpoint)
	}
	f, err := weights.OpenSafetensors(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c := &Checkpoint{Tensors: map[string][]float32{}, Shapes: map[string][]int{}, M: map[string][]float32{}, V: map[string][]float32{}}
	if err := json.Unmarshal([]byte(f.Metadata[ckptState]), &c.State); err != nil {
		return nil, fmt.Errorf("%s: not a training checkpoint (%s: %v)", path, ckptState, err)
	}
	if err := json.Unmarshal([]byte(f.Metadata[ckptIdentity]), &c.Identity); err != nil {
		return nil, fmt.Errorf("%s: not a training checkpoint (%s: %v)", path, ckptIdentity, err)
	}
	if _, err := fmt.Sscan(f.Metadata[ckptAdamT], &c.AdamT); err != nil {
		return nil, fmt.Errorf("%s: not a training checkpoint (%s: %v)", path, ckptAdamT, err)
	}
	for name, t := range f.Tensors {
		d := slices.Clone(t.Data)
		switch {
		case strings.HasPrefix(name, ckptModel):
			n := strings.TrimPrefix(name, ckptModel)
			c.Tensors[n], c.Shapes[n] = d, slices.Clone(t.Shape)
		case strings.HasPrefix(name, ckptM):
			c.M[strings.TrimPrefix(name, ckptM)] = d
		case strings.HasPrefix(name, ckptV):
			c.V[strings.TrimPrefix(name, ckptV)] = d
		default:
			return nil, fmt.Errorf("%s: unexpected tensor %s in a training checkpoint", path, weights.PrintableName(name))
		}
	}
	if len(c.State.Loss) != c.State.Step || len(c.State.LR) != c.State.Step || c.AdamT != c.State.Step {
		return nil, fmt.Errorf("%s: inconsistent checkpoint (step %d, %d losses, %d learning rates, AdamW t %d)", path, c.State.Step, len(c.State.Loss), len(c.State.LR), c.AdamT)
	}
	return c, nil
}

// MismatchError reports a --resume onto a checkpoint another run wrote: the identity keys that
// differ.
type MismatchError struct {
	Path string
	Keys []string
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("%s belongs to another run: %s differ%s; remove the folder or choose another --out", e.Path, strings.Join(e.Keys, ", "), map[bool]string{true: "s", false: ""}[len(e.Keys) == 1])
}

// CheckIdentity compares a checkpoint's identity with this run's, key by key.
func (c *Checkpoint) CheckIdentity(path string, want map[string]string) error {
	var keys []string
	for k, v := range want {
		if c.Identity[k] != v {
			keys = append(keys, k)
		}
	}
	for k := range c.Identity {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	sort.Strings(keys)
	return &MismatchError{Path: path, Keys: keys}
}

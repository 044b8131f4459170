package train

import (
	"context"
	"fmt"
	"math"

	"github.com/perceiverkit/perceiver/internal/par"
)

// Options are the settings of a run that decide its numbers (the flags of `probe train`).
type Options struct {
	Batch       int
	Steps       int // updates in the whole run, S
	Warmup      int
	LR          float64
	WeightDecay float64
	Schedule    Schedule
	Shuffle     bool
	Seed        uint64
}

// Check returns the first bad option as a one-line error naming its flag.
func (o Options) Check() error {
	switch {
	case o.Batch < 1:
		return fmt.Errorf("--batch %d: want at least 1", o.Batch)
	case o.Steps < 1:
		return fmt.Errorf("--steps %d: want at least 1 update", o.Steps)
	case !(o.LR > 0) || math.IsInf(o.LR, 0):
		return fmt.Errorf("--lr %v: want a finite learning rate > 0", o.LR)
	case !(o.WeightDecay >= 0) || math.IsInf(o.WeightDecay, 0):
		return fmt.Errorf("--weight-decay %v: want a finite value ≥ 0", o.WeightDecay)
	case o.Warmup < 0:
		return fmt.Errorf("--warmup %d: want ≥ 0 updates", o.Warmup)
	}
	_, err := ParseSchedule(string(o.Schedule))
	return err
}

// Data is a labelled image set as a run reads it.
type Data interface {
	Len() int
	// Label is item i's class index.
	Label(i int) int
	// Pixels writes item i's model input, [3, H, W] normalised by the image processor, into dst.
	// It is called from several goroutines at once.
	Pixels(dst []float32, i int) error
}

// Objective computes a batch's mean cross-entropy and its gradient with respect to each trained
// parameter (in the Trainer's order, each the parameter's length) from pixels [n, 3, H, W].
type Objective func(pixels []float32, labels []int, n int) (loss float64, grads [][]float32, err error)

// State is what a run has done so far: the updates taken and their losses and learning rates,
// and the evaluations after each epoch.
type State struct {
	Step  int       `json:"step"` // updates taken
	Loss  []float64 `json:"loss"`
	LR    []float64 `json:"lr_per_step"`
	Evals []Eval    `json:"evals"`
}

// Eval is a top-1 measurement on an evaluation source.
type Eval struct {
	Epoch  int     `json:"epoch"` // epochs finished
	Step   int     `json:"step"`  // updates taken
	Source string  `json:"source"`
	N      int     `json:"n"`
	Top1   float64 `json:"top1"`
}

// Trainer runs the updates of one run.
type Trainer struct {
	Opt       Options
	Names     []string    // the trained parameters' Hugging Face names
	Params    [][]float32 // their values, updated in place
	Adam      *AdamW
	Objective Objective
	Data      Data
	Pixels    int    // values per image, 3·H·W
	Changed   func() // called after each update (the model drops what it derived from the old values)
	State     State

	batches *Batches
	buf     []float32
	labels  []int
}

// NonFiniteError reports a loss or gradient that is not finite: the run stops before the update.
type NonFiniteError struct {
	Step int // 0-based update
	What string
}

func (e *NonFiniteError) Error() string {
	return fmt.Sprintf("update %d (step %d of the run): the %s is not finite; stopped before applying it", e.Step, e.Step+1, e.What)
}

// Epoch is the epoch update k belongs to.
func (t *Trainer) Epoch(k int) int {
	t.init()
	return k / t.batches.PerEpoch()
}

// PerEpoch is the number of updates per epoch.
func (t *Trainer) PerEpoch() int {
	t.init()
	return t.batches.PerEpoch()
}

func (t *Trainer) init() {
	if t.batches == nil {
		t.batches = NewBatches(t.Data.Len(), t.Opt.Batch, t.Opt.Shuffle, t.Opt.Seed)
	}
}

// BatchItems returns the items of update k (reused by the next call).
func (t *Trainer) BatchItems(k int) []int {
	t.init()
	items, _ := t.batches.Step(k)
	return items
}

// Step takes update State.Step: the batch's pixels, the loss and gradients, then AdamW with this
// update's learning rate. It returns the batch's loss (before the update) and the batch size.
func (t *Trainer) Step(ctx context.Context) (loss float64, n int, err error) {
	t.init()
	k := t.State.Step
	items := t.BatchItems(k)
	n = len(items)
	if cap(t.buf) < n*t.Pixels {
		t.buf = make([]float32, n*t.Pixels)
	}
	px := t.buf[:n*t.Pixels]
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	t.labels = t.labels[:0]
	errs := make([]error, n)
	par.For(n, 1, func(lo, hi int) {
		for b := lo; b < hi; b++ {
			errs[b] = t.Data.Pixels(px[b*t.Pixels:(b+1)*t.Pixels], items[b])
		}
	})
	for b, i := range items {
		if errs[b] != nil {
			return 0, 0, errs[b]
		}
		t.labels = append(t.labels, t.Data.Label(i))
	}
	loss, grads, err := t.Objective(px, t.labels, n)
	if err != nil {
		return 0, 0, fmt.Errorf("update %d: %w", k, err)
	}
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return loss, n, &NonFiniteError{Step: k, What: fmt.Sprintf("loss (%v)", loss)}
	}
	for i, g := range grads {
		for _, v := range g {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return loss, n, &NonFiniteError{Step: k, What: "gradient of " + t.Names[i]}
			}
		}
	}
	lr := LR(t.Opt.LR, k, t.Opt.Warmup, t.Opt.Steps, t.Opt.Schedule)
	t.Adam.Step(t.Params, grads, lr)
	if t.Changed != nil {
		t.Changed()
	}
	t.State.Step++
	t.State.Loss = append(t.State.Loss, loss)
	t.State.LR = append(t.State.LR, lr)
	return loss, n, nil
}

package faithfulness

import (
	"fmt"

	"github.com/perceiverkit/perceiver/core"
)

// Curve is one direction's perturbation curve: at each fraction f of pixels removed, the target's
// probability and top-1 (1 while the prediction is still the target), for one image or averaged
// over images, with the areas under them.
type Curve struct {
	Fractions []float64 `json:"fractions"`
	Prob      []float64 `json:"prob"`
	Top1      []float64 `json:"top1"`
	AUCProb   float64   `json:"auc_prob"`
	AUCTop1   float64   `json:"auc_top1"`
}

// Curves are a map's curves: the deletion protocol's two (when measured) and ROAD's (when measured).
type Curves struct {
	Positive Curve `json:"positive,omitzero"`
	Negative Curve `json:"negative,omitzero"`
	Road     *Road `json:"road,omitempty"`
}

// HasDeletion reports whether the deletion curves were measured.
func (c Curves) HasDeletion() bool { return len(c.Positive.Fractions) > 0 }

func newCurve(steps int) Curve {
	return Curve{Fractions: Fractions(steps), Prob: make([]float64, steps), Top1: make([]float64, steps)}
}

func (c *Curve) finish() {
	c.AUCProb = Trapezoid(c.Fractions, c.Prob)
	c.AUCTop1 = Trapezoid(c.Fractions, c.Top1)
}

// Image is one image to perturb: pixel_values [3, H, W] and its unperturbed logits, which give
// the target and the k = 0 point of every curve.
type Image struct {
	Pixels []float32
	H, W   int
	Logits []float32
}

// Target is the unperturbed prediction.
func (im Image) Target() int { return core.Argmax(im.Logits) }

// Options set the protocol's number of steps and how many perturbed copies share a pass.
type Options struct {
	Steps int // fractions k/steps, k = 0 … steps−1 (default 10)
	Batch int // perturbed images per forward pass (default 8)
}

func (o Options) withDefaults() Options {
	if o.Steps < 1 {
		o.Steps = 10
	}
	if o.Batch < 1 {
		o.Batch = 8
	}
	return o
}

// Evaluate runs both perturbations of every map of one image (each map [H·W] on the pixel grid)
// and returns their curves, in the order of maps. The perturbed copies of all maps go through
// the model together, Batch at a time: len(maps)·2·(Steps−1) images.
func Evaluate(m *core.Model, im Image, maps [][]float32, opt Options) ([]Curves, error) {
	opt = opt.withDefaults()
	n := im.H * im.W
	if im.H < 1 || im.W < 1 || len(im.Pixels) != 3*n {
		return nil, fmt.Errorf("faithfulness: pixel_values has %d values, want 3×%d×%d", len(im.Pixels), im.H, im.W)
	}
	target := im.Target()
	p0 := core.Softmax(im.Logits)[target]
	out := make([]Curves, len(maps))
	type job struct {
		order []int
		count int
		curve *Curve
		k     int
	}
	var jobs []job
	for i, mp := range maps {
		if len(mp) != n {
			return nil, fmt.Errorf("faithfulness: map %d has %d values, want %d×%d pixels", i, len(mp), im.H, im.W)
		}
		out[i] = Curves{Positive: newCurve(opt.Steps), Negative: newCurve(opt.Steps)}
		for _, dir := range []struct {
			positive bool
			c        *Curve
		}{{true, &out[i].Positive}, {false, &out[i].Negative}} {
			order, err := Order(mp, dir.positive)
			if err != nil {
				return nil, fmt.Errorf("map %d: %w", i, err)
			}
			dir.c.Prob[0], dir.c.Top1[0] = p0, 1
			for k := 1; k < opt.Steps; k++ {
				jobs = append(jobs, job{order, Removed(n, k, opt.Steps), dir.c, k})
			}
		}
	}
	buf := make([]float32, min(opt.Batch, max(1, len(jobs)))*3*n)
	for j0 := 0; j0 < len(jobs); j0 += opt.Batch {
		chunk := jobs[j0:min(j0+opt.Batch, len(jobs))]
		for b, jb := range chunk {
			Perturb(buf[b*3*n:(b+1)*3*n], im.Pixels, jb.order, jb.count)
		}
		res, err := m.Forward(buf[:len(chunk)*3*n], len(chunk), im.H, im.W, core.Trace{})
		if err != nil {
			return nil, err
		}
		labels := len(res.Logits) / len(chunk)
		for b, jb := range chunk {
			logits := res.Logits[b*labels : (b+1)*labels]
			jb.curve.Prob[jb.k] = core.Softmax(logits)[target]
			if core.Argmax(logits) == target {
				jb.curve.Top1[jb.k] = 1
			}
		}
	}
	for i := range out {
		out[i].Positive.finish()
		out[i].Negative.finish()
	}
	return out, nil
}

// Average is the mean of curves over images, point by point, with the areas of the averaged
// curves. The curves must share their fractions.
func Average(curves []Curves) (Curves, error) {
	if len(curves) == 0 {
		return Curves{}, fmt.Errorf("faithfulness: average of no images")
	}
	var avg Curves
	if curves[0].Road != nil {
		rs := make([]Road, len(curves))
		for i, c := range curves {
			if c.Road == nil {
				return Curves{}, fmt.Errorf("faithfulness: ROAD curves of some images only")
			}
			rs[i] = *c.Road
		}
		r, err := AverageRoad(rs)
		if err != nil {
			return Curves{}, err
		}
		avg.Road = &r
	}
	if !curves[0].HasDeletion() {
		return avg, nil
	}
	steps := len(curves[0].Positive.Fractions)
	avg.Positive, avg.Negative = newCurve(steps), newCurve(steps)
	for _, c := range curves {
		for _, d := range []struct{ dst, src *Curve }{{&avg.Positive, &c.Positive}, {&avg.Negative, &c.Negative}} {
			if len(d.src.Fractions) != steps || len(d.src.Prob) != steps || len(d.src.Top1) != steps {
				return Curves{}, fmt.Errorf("faithfulness: curves of %d and %d steps cannot be averaged", steps, len(d.src.Fractions))
			}
			for k := range steps {
				d.dst.Prob[k] += d.src.Prob[k]
				d.dst.Top1[k] += d.src.Top1[k]
			}
		}
	}
	inv := 1 / float64(len(curves))
	for _, c := range []*Curve{&avg.Positive, &avg.Negative} {
		for k := range steps {
			c.Prob[k] *= inv
			c.Top1[k] *= inv
		}
		c.finish()
	}
	return avg, nil
}

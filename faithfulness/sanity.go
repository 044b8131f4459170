package faithfulness

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/perceiverkit/perceiver/core"
)

// Group is one unit of the cascading randomisation: a name and the parameters (Hugging Face
// names) it re-initialises.
type Group struct {
	Name   string
	Params []string
}

// SanityGroups returns the cascade's G = S + 3 groups of a classifier, from the output end:
// decoder (perceiver.decoder.*), self_attends.{S−1} … self_attends.0 (each shared by all blocks),
// cross_attention, input (the latent array and the input stage). Every parameter belongs to
// exactly one group; a model with other parameters (optical flow) is refused.
func SanityGroups(m *core.Model) ([]Group, error) {
	if m.Weights.Classifier() == nil {
		return nil, fmt.Errorf("sanity: the model is not an image classifier (%s): the checks need a class to explain", m.Config.Architectures)
	}
	s := len(m.Weights.SelfAttends)
	groups := []Group{{Name: "decoder"}}
	for i := s - 1; i >= 0; i-- {
		groups = append(groups, Group{Name: "self_attends." + strconv.Itoa(i)})
	}
	groups = append(groups, Group{Name: "cross_attention"}, Group{Name: "input"})
	for _, np := range m.Weights.Params() {
		g := groupOf(np.Name, s)
		if g < 0 {
			return nil, fmt.Errorf("sanity: parameter %s belongs to no randomisation group", np.Name)
		}
		groups[g].Params = append(groups[g].Params, np.Name)
	}
	for _, g := range groups {
		if len(g.Params) == 0 {
			return nil, fmt.Errorf("sanity: randomisation group %s holds no parameter", g.Name)
		}
	}
	return groups, nil
}

// groupOf is the index of the group a parameter belongs to among the S + 3, or −1.
func groupOf(name string, s int) int {
	switch {
	case strings.HasPrefix(name, "perceiver.decoder."):
		return 0
	case strings.HasPrefix(name, "perceiver.encoder.self_attends."):
		rest := strings.TrimPrefix(name, "perceiver.encoder.self_attends.")
		i, err := strconv.Atoi(rest[:max(strings.IndexByte(rest, '.'), 0)])
		if err != nil || i < 0 || i >= s {
			return -1
		}
		return s - i
	case strings.HasPrefix(name, "perceiver.encoder.cross_attention."):
		return s + 1
	case strings.HasPrefix(name, "perceiver.embeddings."), strings.HasPrefix(name, "perceiver.input_preprocessor."):
		return s + 2
	}
	return -1
}

// Reinit is how Hugging Face's PerceiverPreTrainedModel._init_weights (and BatchNorm's own reset)
// initialise a parameter, by its name and shape: biases and running means 0; LayerNorm and
// BatchNorm weights (1-D) and running variances 1; everything else (Linear and Conv2d weights, the
// latent array, trainable position embeddings and the decoder query) N(0, std²).
func Reinit(name string, shape []int, std float64, rng *rand.Rand) []float32 {
	n := 1
	for _, d := range shape {
		n *= d
	}
	out := make([]float32, n)
	fill := func(v float32) {
		for i := range out {
			out[i] = v
		}
	}
	switch {
	case strings.HasSuffix(name, ".bias"), strings.HasSuffix(name, ".running_mean"):
	case strings.HasSuffix(name, ".running_var"):
		fill(1)
	case strings.HasSuffix(name, ".weight") && len(shape) == 1:
		fill(1)
	default:
		for i := range out {
			out[i] = float32(std * rng.NormFloat64())
		}
	}
	return out
}

// Cascade randomises a model's groups one at a time from the output end, in place: step k
// re-initialises group k (Reinit, std = the config's initializer_range) and keeps the draws of
// steps 1 … k−1; every other parameter keeps its values. The model's parameters get new Data
// slices (the loaded ones are never written to), so the model is the step's model after Next.
type Cascade struct {
	Groups []Group
	model  *core.Model
	rng    *rand.Rand
	step   int
}

// NewCascade prepares the cascade of m, drawing from one stream seeded by seed.
func NewCascade(m *core.Model, seed uint64) (*Cascade, error) {
	groups, err := SanityGroups(m)
	if err != nil {
		return nil, err
	}
	if !(m.Config.InitializerRange > 0) {
		return nil, fmt.Errorf("sanity: initializer_range %g: want a positive standard deviation", m.Config.InitializerRange)
	}
	return &Cascade{Groups: groups, model: m, rng: rand.New(rand.NewPCG(seed, 0x5a417e))}, nil
}

// Step is the number of groups randomised so far.
func (c *Cascade) Step() int { return c.step }

// Next randomises the next group and returns its name; it panics after the last group.
func (c *Cascade) Next() string {
	g := c.Groups[c.step] // an index past the end is a programming error
	params := map[string]*core.Param{}
	for _, np := range c.model.Weights.Params() {
		params[np.Name] = np.Param
	}
	for _, name := range g.Params {
		p := params[name]
		p.Data = Reinit(name, p.Shape, c.model.Config.InitializerRange, c.rng)
	}
	c.step++
	return g.Name
}

// Similarity compares two maps of one grid: Spearman's rank correlation of their absolute values
// and of their signed values (nil when undefined: a constant map), and the SSIM of |a|/max|a|
// with |b|/max|b| as scikit-image computes it (nil when the grid is smaller than 7×7).
type Similarity struct {
	SpearmanAbs *float64 `json:"spearman_abs"`
	Spearman    *float64 `json:"spearman"`
	SSIM        *float64 `json:"ssim"`
}

// Compare returns the Similarity of maps a and b on an h×w grid. A NaN is an error.
func Compare(a, b []float32, h, w int) (Similarity, error) {
	if len(a) != h*w || len(b) != h*w {
		return Similarity{}, fmt.Errorf("sanity: maps of %d and %d values on a %d×%d grid", len(a), len(b), h, w)
	}
	fa, fb := make([]float64, len(a)), make([]float64, len(b))
	for i := range a {
		fa[i], fb[i] = float64(a[i]), float64(b[i])
		if math.IsNaN(fa[i]) || math.IsNaN(fb[i]) {
			return Similarity{}, fmt.Errorf("sanity: a map is NaN at %d", i)
		}
	}
	var s Similarity
	s.Spearman = ptr(Spearman(fa, fb))
	for i := range fa {
		fa[i], fb[i] = math.Abs(fa[i]), math.Abs(fb[i])
	}
	s.SpearmanAbs = ptr(Spearman(fa, fb))
	if h >= 7 && w >= 7 {
		v := SSIM(normaliseMax(fa), normaliseMax(fb), h, w)
		s.SSIM = &v
	}
	return s, nil
}

func ptr(v float64) *float64 {
	if math.IsNaN(v) {
		return nil
	}
	return &v
}

// normaliseMax divides non-negative values by their maximum in place (an all-zero map stays 0).
func normaliseMax(v []float64) []float64 {
	m := slices.Max(v)
	if m > 0 {
		for i := range v {
			v[i] /= m
		}
	}
	return v
}

// Ranks returns the ranks 1 … n of v, ties sharing their mean rank (scipy.stats.rankdata's
// "average").
func Ranks(v []float64) []float64 {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(i, j int) bool { return v[idx[i]] < v[idx[j]] })
	r := make([]float64, len(v))
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && v[idx[j]] == v[idx[i]] {
			j++
		}
		mean := float64(i+j+1) / 2 // ranks i+1 … j
		for _, k := range idx[i:j] {
			r[k] = mean
		}
		i = j
	}
	return r
}

// Spearman is the Pearson correlation of the average ranks of a and b (scipy.stats.spearmanr), or
// NaN when either is constant.
func Spearman(a, b []float64) float64 { return Pearson(Ranks(a), Ranks(b)) }

// Pearson is the correlation coefficient of a and b, NaN when either has no variance.
func Pearson(a, b []float64) float64 {
	n := float64(len(a))
	var ma, mb float64
	for i := range a {
		ma += a[i]
		mb += b[i]
	}
	ma, mb = ma/n, mb/n
	var sab, saa, sbb float64
	for i := range a {
		da, db := a[i]-ma, b[i]-mb
		sab += da * db
		saa += da * da
		sbb += db * db
	}
	if saa == 0 || sbb == 0 {
		return math.NaN()
	}
	return sab / math.Sqrt(saa*sbb)
}

// SSIM is skimage.metrics.structural_similarity(a, b, data_range=1) of two h×w images (h, w ≥ 7)
// with its defaults: a uniform 7×7 window, K1 = 0.01, K2 = 0.03, sample covariances (× 49/48), and
// the mean of the SSIM map over the interior, 3 pixels cropped on each side.
func SSIM(a, b []float64, h, w int) float64 {
	const win, k1, k2 = 7, 0.01, 0.03
	const np = win * win
	const covNorm = float64(np) / (np - 1)
	const c1, c2 = k1 * k1, k2 * k2
	half := win / 2
	var sum float64
	for r := half; r < h-half; r++ {
		for c := half; c < w-half; c++ {
			var ux, uy, uxx, uyy, uxy float64
			for dr := -half; dr <= half; dr++ {
				for dc := -half; dc <= half; dc++ {
					x, y := a[(r+dr)*w+c+dc], b[(r+dr)*w+c+dc]
					ux += x
					uy += y
					uxx += x * x
					uyy += y * y
					uxy += x * y
				}
			}
			ux, uy, uxx, uyy, uxy = ux/np, uy/np, uxx/np, uyy/np, uxy/np
			vx := covNorm * (uxx - ux*ux)
			vy := covNorm * (uyy - uy*uy)
			vxy := covNorm * (uxy - ux*uy)
			sum += ((2*ux*uy + c1) * (2*vxy + c2)) / ((ux*ux + uy*uy + c1) * (vx + vy + c2))
		}
	}
	return sum / float64((h-2*half)*(w-2*half))
}

// RandomLogitClass draws the random-logit test's class: uniform over the labels other than target.
func RandomLogitClass(labels, target int, seed uint64) int {
	rng := rand.New(rand.NewPCG(seed, 0x10617))
	c := rng.IntN(labels - 1)
	if c >= target {
		c++
	}
	return c
}

// SanityStep is one step of the cascade: the groups randomised so far and each method's
// similarity of the original map to the map of the randomised model.
type SanityStep struct {
	Randomized []string              `json:"randomized"`
	Methods    map[string]Similarity `json:"methods"`
	// SE are the standard errors over the images of the mean similarities in Methods (runs over a
	// data set only).
	SE map[string]Similarity `json:"se,omitempty"`
}

// RandomLogit is the random-logit test: each method's similarity of the map for the target to the
// map for Class, on the original model.
type RandomLogit struct {
	Class   int                   `json:"class"` // −1 over a data set: each image draws its own (Classes)
	Methods map[string]Similarity `json:"methods"`
	Classes []int                 `json:"classes,omitempty"`
	SE      map[string]Similarity `json:"se,omitempty"`
}

// SanityReport is sanity.json: the target, the groups in cascade order, the steps (step 0 with
// nothing randomised) and the random-logit test.
type SanityReport struct {
	Target      int          `json:"target"` // −1 over a data set: each image's prediction (Targets)
	Targets     []int        `json:"targets,omitempty"`
	Images      int          `json:"images,omitempty"`
	Skipped     int          `json:"skipped,omitempty"`
	Groups      []string     `json:"groups"`
	Steps       []SanityStep `json:"steps"`
	RandomLogit RandomLogit  `json:"random_logit"`
}

// MeanSimilarity averages similarities over images, each measure over the images where it is
// defined, and returns the means and their standard errors (sample standard deviation over √n; 0
// for one image; null where no image defines the measure).
func MeanSimilarity(s []Similarity) (mean, se Similarity) {
	pick := []func(*Similarity) **float64{
		func(x *Similarity) **float64 { return &x.SpearmanAbs },
		func(x *Similarity) **float64 { return &x.Spearman },
		func(x *Similarity) **float64 { return &x.SSIM },
	}
	for _, p := range pick {
		var v []float64
		for i := range s {
			if x := *p(&s[i]); x != nil {
				v = append(v, *x)
			}
		}
		if len(v) == 0 {
			continue
		}
		var m float64
		for _, x := range v {
			m += x
		}
		m /= float64(len(v))
		var ss float64
		for _, x := range v {
			ss += (x - m) * (x - m)
		}
		e := 0.0
		if len(v) > 1 {
			e = math.Sqrt(ss/float64(len(v)-1)) / math.Sqrt(float64(len(v)))
		}
		*p(&mean), *p(&se) = &m, &e
	}
	return mean, se
}

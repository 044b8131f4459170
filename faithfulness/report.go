package faithfulness

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"sort"

	"github.com/perceiverkit/perceiver/internal/outfile"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Report is a faithfulness run over a data set: each method's curves averaged over the images,
// and how they rank. report.json holds it as is.
type Report struct {
	Methods map[string]Curves `json:"methods"`
	Images  int               `json:"images"`  // images scored
	Skipped int               `json:"skipped"` // bad images skipped
	Steps   int               `json:"steps"`
	// Ranking lists the methods best first by Score.
	Ranking []string `json:"ranking"`
	// ScoreSE is the standard error of each method's Score over the images: the standard
	// deviation of the per-image scores divided by √images (0 for one image). Differences
	// between methods smaller than a few of these are noise.
	ScoreSE map[string]float64 `json:"score_se"`
	Scores  map[string]any     `json:"score_definition,omitempty"`
	Meta    map[string]any     `json:"meta,omitempty"` // model, source, seed, method settings, timings
}

// Score is how Ranking orders the methods: the negative perturbation's AUC of the target
// probability minus the positive one's (large when removing the top-ranked pixels hurts and
// removing the bottom-ranked ones does not).
func Score(c Curves) float64 { return c.Negative.AUCProb - c.Positive.AUCProb }

// NewReport averages each method's per-image curves (all methods over the same images) and ranks
// the methods by Score, ties by name.
func NewReport(perImage map[string][]Curves, steps, skipped int, meta map[string]any) (*Report, error) {
	r := &Report{Methods: map[string]Curves{}, ScoreSE: map[string]float64{}, Steps: steps, Skipped: skipped, Meta: meta,
		Scores: map[string]any{"score": "negative.auc_prob − positive.auc_prob", "order": "descending, ties by name"}}
	r.Images = -1
	for name, cs := range perImage {
		if r.Images >= 0 && len(cs) != r.Images {
			return nil, fmt.Errorf("faithfulness: method %s has %d images, another %d", name, len(cs), r.Images)
		}
		r.Images = len(cs)
		avg, err := Average(cs)
		if err != nil {
			return nil, fmt.Errorf("method %s: %w", name, err)
		}
		r.Methods[name] = avg
		r.ScoreSE[name] = standardError(cs)
		r.Ranking = append(r.Ranking, name)
	}
	if r.Images < 0 {
		return nil, fmt.Errorf("faithfulness: no methods")
	}
	sort.Slice(r.Ranking, func(i, j int) bool {
		a, b := Score(r.Methods[r.Ranking[i]]), Score(r.Methods[r.Ranking[j]])
		if a != b {
			return a > b
		}
		return r.Ranking[i] < r.Ranking[j]
	})
	return r, nil
}

// standardError is the standard error of the mean of the per-image scores (sample standard
// deviation over √n; 0 for n = 1). Per-image scores are the same AUC differences, image by image;
// their mean equals Score of the averaged curves up to rounding.
func standardError(cs []Curves) float64 {
	n := float64(len(cs))
	if len(cs) < 2 {
		return 0
	}
	var mean float64
	for _, c := range cs {
		mean += Score(c)
	}
	mean /= n
	var ss float64
	for _, c := range cs {
		d := Score(c) - mean
		ss += d * d
	}
	return math.Sqrt(ss/(n-1)) / math.Sqrt(n)
}

// Markdown is the ranked table of report.md.
func (r *Report) Markdown() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Faithfulness by perturbation\n\n%d images (%d skipped), %d steps: f = k/%d, k = 0…%d. ", r.Images, r.Skipped, r.Steps, r.Steps, r.Steps-1)
	b.WriteString("Positive: the pixels a map ranks highest are set to 0 first (lower AUC is better); negative: the lowest first (higher is better). ")
	b.WriteString("AUC by the trapezoid rule over f of the mean softmax probability of the unperturbed prediction (prob) and of the rate at which it stays the prediction (top-1). ")
	b.WriteString("Ranked by negative − positive AUC of prob (± its standard error over the images).\n\n")
	b.WriteString("| rank | method | positive AUC prob ↓ | negative AUC prob ↑ | neg − pos ↑ | positive AUC top-1 ↓ | negative AUC top-1 ↑ |\n")
	b.WriteString("|---:|---|---:|---:|---:|---:|---:|\n")
	for i, name := range r.Ranking {
		c := r.Methods[name]
		fmt.Fprintf(&b, "| %d | %s | %.4f | %.4f | %.4f ± %.4f | %.4f | %.4f |\n", i+1, name,
			c.Positive.AUCProb, c.Negative.AUCProb, Score(c), r.ScoreSE[name], c.Positive.AUCTop1, c.Negative.AUCTop1)
	}
	return b.Bytes()
}

// Write saves report.json, report.md and curves.png into dir.
func (r *Report) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("faithfulness: report: %w", err)
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("faithfulness: report: %w", err)
	}
	if err := outfile.CheckAll(ReportFiles(dir)...); err != nil { // the whole set, before the first
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, "report.json"), append(js, '\n')); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, "report.md"), r.Markdown()); err != nil {
		return err
	}
	return r.PlotCurves(filepath.Join(dir, "curves.png"))
}

// ReportFiles are the paths Write writes into dir, for checking before any work.
func ReportFiles(dir string) []string {
	return []string{filepath.Join(dir, "report.json"), filepath.Join(dir, "report.md"), filepath.Join(dir, "curves.png")}
}

// writeFileAtomic writes a temporary file and renames it, so that a reader never sees half a file.
func writeFileAtomic(path string, data []byte) error {
	if err := outfile.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("faithfulness: %w", err)
	}
	return nil
}

// palette is Tableau's ten colours; methods beyond ten reuse them with dashes.
var palette = []color.RGBA{
	{31, 119, 180, 255}, {255, 127, 14, 255}, {44, 160, 44, 255}, {214, 39, 40, 255}, {148, 103, 189, 255},
	{140, 86, 75, 255}, {227, 119, 194, 255}, {127, 127, 127, 255}, {188, 189, 34, 255}, {23, 190, 207, 255},
}

// PlotCurves saves a PNG of two panels, positive and negative perturbation: the mean target
// probability against the fraction of pixels removed, one line per method in ranking order.
func (r *Report) PlotCurves(path string) error {
	panels := make([]*plot.Plot, 2)
	for d, title := range []string{"positive (top-ranked pixels removed first)", "negative (bottom-ranked first)"} {
		p := plot.New()
		p.Title.Text = title
		p.X.Label.Text = "fraction of pixels set to 0"
		p.Y.Label.Text = "probability of the unperturbed prediction"
		p.Add(plotter.NewGrid())
		for i, name := range r.Ranking {
			c := r.Methods[name].Positive
			if d == 1 {
				c = r.Methods[name].Negative
			}
			xy := make(plotter.XYs, len(c.Fractions))
			for k := range xy {
				xy[k] = plotter.XY{X: c.Fractions[k], Y: c.Prob[k]}
			}
			line, points, err := plotter.NewLinePoints(xy)
			if err != nil {
				return fmt.Errorf("faithfulness: plot %s: %w", path, err)
			}
			col := palette[i%len(palette)]
			line.Color, points.Color = col, col
			line.Width = vg.Points(1.5)
			if i >= len(palette) {
				line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			}
			points.Shape = draw.CircleGlyph{}
			points.Radius = vg.Points(2)
			p.Add(line, points)
			p.Legend.Add(fmt.Sprintf("%s (AUC %.3f)", name, c.AUCProb), line, points)
		}
		p.Legend.Left = true // curves start high on the left: the bottom left is free
		p.Legend.XOffs = vg.Millimeter * 3
		p.Legend.TextStyle.Font.Size = vg.Points(8)
		p.Y.Min = 0
		panels[d] = p
	}
	const w, h = 30 * vg.Centimeter, 12 * vg.Centimeter
	img := vgimg.New(w, h)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Centimeter, PadLeft: vg.Millimeter * 3, PadRight: vg.Millimeter * 3, PadTop: vg.Millimeter * 3, PadBottom: vg.Millimeter * 3}
	canvases := plot.Align([][]*plot.Plot{panels}, tiles, dc)
	for i, p := range panels {
		p.Draw(canvases[0][i])
	}
	if err := outfile.WriteTo(path, vgimg.PngCanvas{Canvas: img}); err != nil {
		return fmt.Errorf("faithfulness: plot: %w", err)
	}
	return nil
}

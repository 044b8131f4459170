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
	ScoreSE map[string]float64 `json:"score_se,omitempty"`
	// RankBy is the measure Ranking uses: "deletion" (Score) or "road" (RoadScore).
	RankBy string `json:"rank_by"`
	// RoadSE holds, per method, the standard errors over the images of its ROAD AUCs and
	// RoadScore (when ROAD was measured).
	RoadSE map[string]RoadSE `json:"road_se,omitempty"`
	Scores map[string]any    `json:"score_definition,omitempty"`
	Meta   map[string]any    `json:"meta,omitempty"` // model, source, seed, method settings, timings
}

// Score is how Ranking orders the methods: the negative perturbation's AUC of the target
// probability minus the positive one's (large when removing the top-ranked pixels hurts and
// removing the bottom-ranked ones does not).
func Score(c Curves) float64 { return c.Negative.AUCProb - c.Positive.AUCProb }

// RoadSE are the standard errors over the images of one method's ROAD numbers.
type RoadSE struct {
	MoRF  float64 `json:"morf_auc_prob"`
	LeRF  float64 `json:"lerf_auc_prob"`
	Score float64 `json:"score"`
}

// NewReport averages each method's per-image curves (all methods over the same images) and ranks
// the methods by Score (by RoadScore when only ROAD was measured), ties by name.
func NewReport(perImage map[string][]Curves, steps, skipped int, meta map[string]any) (*Report, error) {
	return NewReportBy(perImage, steps, skipped, "", meta)
}

// NewReportBy is NewReport ranking by rankBy: "deletion" (Score), "road" (RoadScore) or "" (deletion
// when measured, else road).
func NewReportBy(perImage map[string][]Curves, steps, skipped int, rankBy string, meta map[string]any) (*Report, error) {
	r := &Report{Methods: map[string]Curves{}, Steps: steps, Skipped: skipped, Meta: meta}
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
		if avg.HasDeletion() {
			if r.ScoreSE == nil {
				r.ScoreSE = map[string]float64{}
			}
			r.ScoreSE[name] = standardError(cs, Score)
		}
		if avg.Road != nil {
			if r.RoadSE == nil {
				r.RoadSE = map[string]RoadSE{}
			}
			r.RoadSE[name] = RoadSE{
				MoRF:  standardError(cs, func(c Curves) float64 { return c.Road.MoRF.AUCProb }),
				LeRF:  standardError(cs, func(c Curves) float64 { return c.Road.LeRF.AUCProb }),
				Score: standardError(cs, func(c Curves) float64 { return RoadScore(*c.Road) }),
			}
		}
		r.Ranking = append(r.Ranking, name)
	}
	if r.Images < 0 {
		return nil, fmt.Errorf("faithfulness: no methods")
	}
	for _, c := range r.Methods {
		if c.HasDeletion() != (r.ScoreSE != nil) || (c.Road != nil) != (r.RoadSE != nil) {
			return nil, fmt.Errorf("faithfulness: methods measured with different metrics")
		}
	}
	if rankBy == "" {
		rankBy = "deletion"
		if r.ScoreSE == nil {
			rankBy = "road"
		}
	}
	score := Score
	switch {
	case rankBy == "deletion" && r.ScoreSE != nil:
		r.Scores = map[string]any{"score": "negative.auc_prob − positive.auc_prob", "order": "descending, ties by name"}
	case rankBy == "road" && r.RoadSE != nil:
		score = func(c Curves) float64 { return RoadScore(*c.Road) }
		r.Scores = map[string]any{"score": "road.lerf.auc_prob − road.morf.auc_prob", "order": "descending, ties by name"}
	default:
		return nil, fmt.Errorf("faithfulness: cannot rank by %q: it was not measured (deletion or road)", rankBy)
	}
	r.RankBy = rankBy
	sort.Slice(r.Ranking, func(i, j int) bool {
		a, b := score(r.Methods[r.Ranking[i]]), score(r.Methods[r.Ranking[j]])
		if a != b {
			return a > b
		}
		return r.Ranking[i] < r.Ranking[j]
	})
	return r, nil
}

// standardError is the standard error of the mean of the per-image values of f (sample standard
// deviation over √n; 0 for n = 1). AUCs and their differences are linear in the curves, so the
// mean of the per-image values equals f of the averaged curves up to rounding.
func standardError(cs []Curves, f func(Curves) float64) float64 {
	n := float64(len(cs))
	if len(cs) < 2 {
		return 0
	}
	var mean float64
	for _, c := range cs {
		mean += f(c)
	}
	mean /= n
	var ss float64
	for _, c := range cs {
		d := f(c) - mean
		ss += d * d
	}
	return math.Sqrt(ss/(n-1)) / math.Sqrt(n)
}

// Markdown is the ranked table of report.md.
func (r *Report) Markdown() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Faithfulness by perturbation\n\n%d images (%d skipped). Methods ranked by %s.\n\n", r.Images, r.Skipped, r.Scores["score"])
	if r.ScoreSE != nil {
		r.deletionMarkdown(&b)
	}
	if r.RoadSE != nil {
		if r.ScoreSE != nil {
			b.WriteString("\n")
		}
		r.roadMarkdown(&b)
	}
	return b.Bytes()
}

func (r *Report) roadMarkdown(b *bytes.Buffer) {
	fmt.Fprintf(b, "## ROAD (remove and debias)\n\nFractions p = j/%d, j = 1…%d. ", r.Steps, r.Steps-1)
	b.WriteString("The first ⌊p·N⌋ pixels of the order are imputed from their neighbours (noisy linear imputation, Rong et al. 2022); ")
	b.WriteString("MoRF removes the highest-ranked first (lower AUC is better), LeRF the lowest-ranked first (p is the fraction removed in both; higher is better). ")
	b.WriteString("AUC by the trapezoid rule over the given p (not rescaled) of the mean softmax probability of the unperturbed prediction; ± standard errors over the images.\n\n")
	b.WriteString("| rank | method | MoRF AUC ↓ | LeRF AUC ↑ | LeRF − MoRF ↑ |\n|---:|---|---:|---:|---:|\n")
	for i, name := range r.Ranking {
		c, se := r.Methods[name].Road, r.RoadSE[name]
		fmt.Fprintf(b, "| %d | %s | %.4f ± %.4f | %.4f ± %.4f | %.4f ± %.4f |\n", i+1, name,
			c.MoRF.AUCProb, se.MoRF, c.LeRF.AUCProb, se.LeRF, RoadScore(*c), se.Score)
	}
}

func (r *Report) deletionMarkdown(b *bytes.Buffer) {
	fmt.Fprintf(b, "## Deletion\n\n%d steps: f = k/%d, k = 0…%d. ", r.Steps, r.Steps, r.Steps-1)
	b.WriteString("Positive: the pixels a map ranks highest are set to 0 first (lower AUC is better); negative: the lowest first (higher is better). ")
	b.WriteString("AUC by the trapezoid rule over f of the mean softmax probability of the unperturbed prediction (prob) and of the rate at which it stays the prediction (top-1). ")
	b.WriteString("neg − pos of prob ± its standard error over the images.\n\n")
	b.WriteString("| rank | method | positive AUC prob ↓ | negative AUC prob ↑ | neg − pos ↑ | positive AUC top-1 ↓ | negative AUC top-1 ↑ |\n")
	b.WriteString("|---:|---|---:|---:|---:|---:|---:|\n")
	for i, name := range r.Ranking {
		c := r.Methods[name]
		fmt.Fprintf(b, "| %d | %s | %.4f | %.4f | %.4f ± %.4f | %.4f | %.4f |\n", i+1, name,
			c.Positive.AUCProb, c.Negative.AUCProb, Score(c), r.ScoreSE[name], c.Positive.AUCTop1, c.Negative.AUCTop1)
	}
}

// Write saves report.json, report.md and curves.png into dir.
func (r *Report) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("faithfulness: report: %w", err)
	}
	for _, f := range []string{"report.json", "report.md", "curves.png"} {
		if err := outfile.CheckTarget(filepath.Join(dir, f)); err != nil {
			return err
		}
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

// PlotCurves saves a PNG of the curves measured: the deletion protocol's positive and negative
// perturbation and ROAD's MoRF and LeRF, one panel each: the mean target probability against the
// fraction of pixels removed, one line per method in ranking order.
func (r *Report) PlotCurves(path string) error {
	type panel struct {
		title, xlabel string
		pick          func(Curves) ([]float64, []float64, float64)
	}
	var specs []panel
	if r.ScoreSE != nil {
		specs = append(specs,
			panel{"deletion, positive (top-ranked pixels set to 0 first)", "fraction of pixels set to 0",
				func(c Curves) ([]float64, []float64, float64) {
					return c.Positive.Fractions, c.Positive.Prob, c.Positive.AUCProb
				}},
			panel{"deletion, negative (bottom-ranked first)", "fraction of pixels set to 0",
				func(c Curves) ([]float64, []float64, float64) {
					return c.Negative.Fractions, c.Negative.Prob, c.Negative.AUCProb
				}})
	}
	if r.RoadSE != nil {
		specs = append(specs,
			panel{"ROAD MoRF (top-ranked pixels imputed first)", "fraction of pixels removed and imputed",
				func(c Curves) ([]float64, []float64, float64) {
					return c.Road.MoRF.Fractions, c.Road.MoRF.Prob, c.Road.MoRF.AUCProb
				}},
			panel{"ROAD LeRF (bottom-ranked first)", "fraction of pixels removed and imputed",
				func(c Curves) ([]float64, []float64, float64) {
					return c.Road.LeRF.Fractions, c.Road.LeRF.Prob, c.Road.LeRF.AUCProb
				}})
	}
	panels := make([]*plot.Plot, len(specs))
	for d, sp := range specs {
		p := plot.New()
		p.Title.Text = sp.title
		p.X.Label.Text = sp.xlabel
		p.Y.Label.Text = "probability of the unperturbed prediction"
		p.Add(plotter.NewGrid())
		for i, name := range r.Ranking {
			fr, prob, auc := sp.pick(r.Methods[name])
			xy := make(plotter.XYs, len(fr))
			for k := range xy {
				xy[k] = plotter.XY{X: fr[k], Y: prob[k]}
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
			p.Legend.Add(fmt.Sprintf("%s (AUC %.3f)", name, auc), line, points)
		}
		p.Legend.Left = true // curves start high on the left: the bottom left is free
		p.Legend.XOffs = vg.Millimeter * 3
		p.Legend.TextStyle.Font.Size = vg.Points(8)
		p.Y.Min = 0
		panels[d] = p
	}
	rows := [][]*plot.Plot{panels}
	if len(panels) == 4 {
		rows = [][]*plot.Plot{panels[:2], panels[2:]}
	}
	w, h := 30*vg.Centimeter, 12*vg.Centimeter*vg.Length(len(rows))+vg.Centimeter
	img := vgimg.New(w, h)
	dc := draw.New(img)
	// The figure's title: the model (its name says "random weights" when they are) and the images.
	title := fmt.Sprintf("Faithfulness of attribution maps: %v, %d images", r.Meta["model"], r.Images)
	ts := plot.New().Title.TextStyle
	ts.Font.Size = vg.Points(13)
	ts.XAlign = draw.XCenter
	dc.FillText(ts, vg.Point{X: w / 2, Y: h - vg.Millimeter*7}, title)
	tiles := draw.Tiles{Rows: len(rows), Cols: 2, PadX: vg.Centimeter, PadY: vg.Centimeter, PadLeft: vg.Millimeter * 3, PadRight: vg.Millimeter * 3, PadTop: vg.Centimeter + vg.Millimeter*3, PadBottom: vg.Millimeter * 3}
	canvases := plot.Align(rows, tiles, dc)
	for i, row := range rows {
		for j, p := range row {
			p.Draw(canvases[i][j])
		}
	}
	if err := outfile.WriteTo(path, vgimg.PngCanvas{Canvas: img}); err != nil {
		return fmt.Errorf("faithfulness: plot: %w", err)
	}
	return nil
}

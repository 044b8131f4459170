package linear

import (
	"fmt"
	"image/color"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/perceiverkit/perceiver/internal/outfile"
)

// PlotAccuracyByLayer saves a PNG of test top-1 against depth (results in the order given, one
// category per column) for the linear probe and the kNN baseline, each probe point labelled with
// its chosen C.
func PlotAccuracyByLayer(path string, results []*Result) error {
	p := plot.New()
	p.Title.Text = "Linear probe and kNN accuracy by depth"
	p.Y.Label.Text = "test top-1 accuracy"
	p.X.Label.Text = "column (shallow → deep)"
	names := make([]string, len(results))
	lin := make(plotter.XYs, len(results))
	var knn plotter.XYs
	cLabels := plotter.XYLabels{XYs: make(plotter.XYs, len(results)), Labels: make([]string, len(results))}
	for i, r := range results {
		names[i] = r.Column
		lin[i] = plotter.XY{X: float64(i), Y: r.Test.Top1}
		cLabels.XYs[i] = plotter.XY{X: float64(i), Y: r.Test.Top1}
		cLabels.Labels[i] = "C=" + strconv.FormatFloat(r.BestC, 'g', 3, 64)
		if r.KNN != nil {
			knn = append(knn, plotter.XY{X: float64(i), Y: r.KNN.Top1})
		}
	}
	line, points, err := plotter.NewLinePoints(lin)
	if err != nil {
		return fmt.Errorf("linear: plot %s: %w", path, err)
	}
	blue := color.RGBA{R: 31, G: 119, B: 180, A: 255}
	line.Color, points.Color = blue, blue
	points.Shape = draw.CircleGlyph{}
	p.Add(line, points)
	p.Legend.Add("linear probe", line, points)
	if len(knn) > 0 {
		kl, kp, err := plotter.NewLinePoints(knn)
		if err != nil {
			return fmt.Errorf("linear: plot %s: %w", path, err)
		}
		orange := color.RGBA{R: 255, G: 127, B: 14, A: 255}
		kl.Color, kp.Color = orange, orange
		kl.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		kp.Shape = draw.TriangleGlyph{}
		p.Add(kl, kp)
		k := 20
		if len(results[0].KNNByK) > 0 {
			k = results[0].KNNByK[0].K
		}
		p.Legend.Add(fmt.Sprintf("kNN (k=%d, cosine)", k), kl, kp)
	}
	labels, err := plotter.NewLabels(cLabels)
	if err != nil {
		return fmt.Errorf("linear: plot %s: %w", path, err)
	}
	for i := range labels.TextStyle {
		labels.TextStyle[i].Font.Size = vg.Points(8)
		labels.TextStyle[i].YAlign = draw.YBottom
		labels.TextStyle[i].XAlign = draw.XCenter
	}
	labels.Offset = vg.Point{Y: vg.Points(5)}
	p.Add(labels)
	p.Add(plotter.NewGrid())
	p.NominalX(names...)
	p.Y.Min, p.Y.Max = 0, 1.08
	p.X.Min, p.X.Max = -0.5, float64(len(results))-0.5
	p.Legend.Top = true // accuracy usually rises with depth: the top left is free
	p.Legend.Left = true
	if len(names) > 8 {
		p.X.Tick.Label.Rotation = math.Pi / 4
		p.X.Tick.Label.XAlign = draw.XRight
		p.X.Tick.Label.YAlign = draw.YCenter
	}
	width := vg.Length(math.Max(16, 1.2*float64(len(names)))) * vg.Centimeter
	if err := outfile.SavePlot(path, p, width, 11*vg.Centimeter); err != nil {
		return fmt.Errorf("linear: plot %s: %w", path, err)
	}
	return nil
}

// confusionGrid is a row-normalised confusion matrix on a unit grid; row 0 (true class 0) is drawn
// at the top.
type confusionGrid struct{ norm [][]float64 }

func (g confusionGrid) Dims() (c, r int)   { return len(g.norm), len(g.norm) }
func (g confusionGrid) Z(c, r int) float64 { return g.norm[len(g.norm)-1-r][c] }
func (g confusionGrid) X(c int) float64    { return float64(c) }
func (g confusionGrid) Y(r int) float64    { return float64(r) }
func (g confusionGrid) Min() float64       { return 0 }
func (g confusionGrid) Max() float64       { return 1 }

// whiteToBlue is a sequential palette for fractions in [0, 1].
type whiteToBlue int

func (n whiteToBlue) Colors() []color.Color {
	out := make([]color.Color, int(n))
	for i := range out {
		t := float64(i) / float64(int(n)-1)
		out[i] = color.RGBA{R: uint8(255 - t*(255-8)), G: uint8(255 - t*(255-48)), B: uint8(255 - t*(255-107)), A: 255}
	}
	return out
}

// PlotConfusion saves a PNG of r's test confusion matrix, each row normalised by its class count;
// counts are printed in the cells for up to 20 classes.
func PlotConfusion(path string, r *Result) error {
	conf := r.Test.Confusion
	k := len(conf)
	norm := make([][]float64, k)
	for i, row := range conf {
		norm[i] = make([]float64, k)
		total := 0
		for _, v := range row {
			total += v
		}
		for j, v := range row {
			if total > 0 {
				norm[i][j] = float64(v) / float64(total)
			}
		}
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Confusion (test, row-normalised): %s, top-1 %.3f", r.Column, r.Test.Top1)
	p.X.Label.Text = "predicted"
	p.Y.Label.Text = "true"
	p.Add(plotter.NewHeatMap(confusionGrid{norm}, whiteToBlue(64)))
	names := make([]string, k)
	for i := range names {
		names[i] = strconv.Itoa(i)
		if i < len(r.Classes) {
			names[i] = r.Classes[i]
		}
	}
	if k <= 40 {
		xt := make(plot.ConstantTicks, k)
		yt := make(plot.ConstantTicks, k)
		for i := range k {
			xt[i] = plot.Tick{Value: float64(i), Label: names[i]}
			yt[i] = plot.Tick{Value: float64(k - 1 - i), Label: names[i]}
		}
		p.X.Tick.Marker, p.Y.Tick.Marker = xt, yt
		if k > 6 {
			p.X.Tick.Label.Rotation = math.Pi / 4
			p.X.Tick.Label.XAlign = draw.XRight
			p.X.Tick.Label.YAlign = draw.YCenter
		}
	}
	if k <= 20 {
		cells := plotter.XYLabels{}
		for i := range k {
			for j := range k {
				cells.XYs = append(cells.XYs, plotter.XY{X: float64(j), Y: float64(k - 1 - i)})
				cells.Labels = append(cells.Labels, strconv.Itoa(conf[i][j]))
			}
		}
		labels, err := plotter.NewLabels(cells)
		if err != nil {
			return fmt.Errorf("linear: plot %s: %w", path, err)
		}
		for i := range labels.TextStyle {
			labels.TextStyle[i].XAlign = draw.XCenter
			labels.TextStyle[i].YAlign = draw.YCenter
			labels.TextStyle[i].Font.Size = vg.Points(8)
			if norm[i/k][i%k] > 0.55 {
				labels.TextStyle[i].Color = color.White
			}
		}
		p.Add(labels)
	}
	p.X.Min, p.X.Max = -0.5, float64(k)-0.5
	p.Y.Min, p.Y.Max = -0.5, float64(k)-0.5
	side := vg.Length(math.Max(14, math.Min(40, 0.9*float64(k)+6))) * vg.Centimeter
	if err := outfile.SavePlot(path, p, side, side); err != nil {
		return fmt.Errorf("linear: plot %s: %w", path, err)
	}
	return nil
}

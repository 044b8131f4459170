package faithfulness

import (
	"fmt"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/perceiverkit/perceiver/internal/outfile"
)

// PlotCascade saves the cascading-randomisation figure (Adebayo et al. 2018, Fig. 2): one panel per
// similarity (Spearman of |maps|, Spearman of signed maps, SSIM), each method's similarity of the
// original map to the randomised model's against the groups randomised so far, the random-logit
// value as a cross at the right. Undefined values (a constant map) are left out. title heads the
// figure (the model; say "random weights" when they are).
func (r *SanityReport) PlotCascade(path, title string, methods []string) error {
	measures := []struct {
		name string
		pick func(Similarity) *float64
	}{
		{"Spearman of |maps|", func(s Similarity) *float64 { return s.SpearmanAbs }},
		{"Spearman of signed maps", func(s Similarity) *float64 { return s.Spearman }},
		{"SSIM of |map|/max|map|", func(s Similarity) *float64 { return s.SSIM }},
	}
	ticks := []plot.Tick{{Value: 0, Label: "original"}}
	for i, g := range r.Groups {
		ticks = append(ticks, plot.Tick{Value: float64(i + 1), Label: "+" + g})
	}
	logitX := float64(len(r.Groups)) + 1.5
	rl := fmt.Sprintf("random logit (class %d)", r.RandomLogit.Class)
	if r.RandomLogit.Class < 0 {
		rl = "random logit (a class per image)"
	}
	ticks = append(ticks, plot.Tick{Value: logitX, Label: rl})
	panels := make([]*plot.Plot, len(measures))
	for d, ms := range measures {
		p := plot.New()
		p.Title.Text = ms.name
		p.X.Label.Text = "groups randomised, cascading from the output"
		p.Y.Label.Text = "similarity to the original map"
		p.X.Tick.Marker = plot.ConstantTicks(ticks)
		p.X.Tick.Label.Rotation = math.Pi / 4
		p.X.Tick.Label.XAlign = draw.XRight
		p.X.Tick.Label.YAlign = draw.YCenter
		p.Add(plotter.NewGrid())
		for i, name := range methods {
			var xy plotter.XYs
			for k, st := range r.Steps {
				if v := ms.pick(st.Methods[name]); v != nil {
					xy = append(xy, plotter.XY{X: float64(k), Y: *v})
				}
			}
			col := palette[i%len(palette)]
			if len(xy) > 0 {
				line, points, err := plotter.NewLinePoints(xy)
				if err != nil {
					return fmt.Errorf("sanity: plot %s: %w", path, err)
				}
				line.Color, points.Color = col, col
				line.Width = vg.Points(1.5)
				if i >= len(palette) {
					line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
				}
				points.Shape = draw.CircleGlyph{}
				points.Radius = vg.Points(2)
				p.Add(line, points)
				p.Legend.Add(name, line, points)
			}
			if v := ms.pick(r.RandomLogit.Methods[name]); v != nil {
				sc, err := plotter.NewScatter(plotter.XYs{{X: logitX, Y: *v}})
				if err != nil {
					return fmt.Errorf("sanity: plot %s: %w", path, err)
				}
				sc.Color, sc.Shape, sc.Radius = col, draw.CrossGlyph{}, vg.Points(4)
				p.Add(sc)
			}
		}
		p.Legend.Left = true
		p.Legend.Top = false
		p.Legend.TextStyle.Font.Size = vg.Points(8)
		p.Y.Min, p.Y.Max = -1, 1.05
		p.X.Min, p.X.Max = -0.3, logitX+0.5
		panels[d] = p
	}
	const w, h = 42 * vg.Centimeter, 15 * vg.Centimeter
	img := vgimg.New(w, h)
	dc := draw.New(img)
	ts := plot.New().Title.TextStyle
	ts.Font.Size = vg.Points(13)
	ts.XAlign = draw.XCenter
	dc.FillText(ts, vg.Point{X: w / 2, Y: h - vg.Millimeter*7}, "Cascading randomisation: "+title)
	tiles := draw.Tiles{Rows: 1, Cols: len(panels), PadX: vg.Centimeter, PadLeft: vg.Millimeter * 3, PadRight: vg.Millimeter * 3, PadTop: vg.Centimeter + vg.Millimeter*3, PadBottom: vg.Millimeter * 3}
	canvases := plot.Align([][]*plot.Plot{panels}, tiles, dc)
	for i, p := range panels {
		p.Draw(canvases[0][i])
	}
	f, err := outfile.Create(path)
	if err != nil {
		return fmt.Errorf("sanity: plot: %w", err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("sanity: plot %s: %w", path, err)
	}
	return f.Close()
}

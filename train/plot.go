package train

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/perceiverkit/perceiver/internal/outfile"
)

// PlotLoss saves a PNG of the loss of every update (light) and its running mean over a window of
// about an epoch's fiftieth (dark), with the evaluations' top-1 listed in the legend. title names
// the run.
func PlotLoss(path, title string, st State, perEpoch int) error {
	if len(st.Loss) == 0 {
		return fmt.Errorf("plot %s: no updates to draw", path)
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "update (optimiser step)"
	p.Y.Label.Text = "mean cross-entropy of the batch (nats)"
	raw := make(plotter.XYs, len(st.Loss))
	for i, l := range st.Loss {
		raw[i] = plotter.XY{X: float64(i + 1), Y: l}
	}
	line, err := plotter.NewLine(raw)
	if err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	line.Color = color.RGBA{R: 158, G: 202, B: 225, A: 255}
	p.Add(plotter.NewGrid(), line)
	p.Legend.Add("loss of each update", line)
	if w := max(1, min(len(st.Loss)/20, max(perEpoch/50, 10))); w > 1 && len(st.Loss) > w {
		avg := make(plotter.XYs, 0, len(st.Loss)-w+1)
		sum := 0.0
		for i, l := range st.Loss {
			sum += l
			if i >= w {
				sum -= st.Loss[i-w]
			}
			if i >= w-1 {
				avg = append(avg, plotter.XY{X: float64(i + 1), Y: sum / float64(w)})
			}
		}
		al, err := plotter.NewLine(avg)
		if err != nil {
			return fmt.Errorf("plot %s: %w", path, err)
		}
		al.Color = color.RGBA{R: 8, G: 48, B: 107, A: 255}
		al.Width = vg.Points(1.5)
		p.Add(al)
		p.Legend.Add(fmt.Sprintf("running mean of %d updates", w), al)
	}
	for _, e := range st.Evals {
		p.Legend.Add(fmt.Sprintf("after update %d: top-1 %.2f%% on %s (%d images)", e.Step, 100*e.Top1, e.Source, e.N))
	}
	p.Y.Min = 0
	p.Y.Max = 0
	for _, l := range st.Loss {
		p.Y.Max = max(p.Y.Max, l)
	}
	// The loss falls from the top left: the legend goes top right, above the curve's tail, with
	// headroom for its lines.
	p.Y.Max *= 1 + 0.07*float64(len(st.Evals)+2)
	p.Legend.Top = true
	if err := outfile.CheckTarget(path); err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp.png")
	if err := outfile.CheckTarget(tmp); err != nil {
		return err
	}
	if err := p.Save(18*vg.Centimeter, 11*vg.Centimeter, tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}

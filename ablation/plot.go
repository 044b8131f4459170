package ablation

import (
	"fmt"
	"github.com/perceiverkit/perceiver/internal/outfile"
	"image/color"
	"math"
	"sort"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Ranked returns the positions of r.Latents ordered by Δ, largest first, ties by the lower latent.
func (r *Result) Ranked() []int {
	idx := make([]int, len(r.Latents))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		da, db := r.Delta[idx[a]], r.Delta[idx[b]]
		if da != db {
			return da > db
		}
		return r.Latents[idx[a]] < r.Latents[idx[b]]
	})
	return idx
}

// PlotDeltas saves a PNG bar chart of Δ per latent, ranked largest first; the latents are named
// on the axis when there are at most 48 of them.
func PlotDeltas(path string, r *Result, title string) error {
	order := r.Ranked()
	vals := make(plotter.Values, len(order))
	names := make([]string, len(order))
	for i, j := range order {
		vals[i] = r.Delta[j]
		names[i] = strconv.Itoa(r.Latents[j])
	}
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = "Δ = y(x) − y(x, latent ablated)"
	p.X.Label.Text = "latent, ranked by Δ"
	width := math.Max(1, math.Min(14, 600/float64(max(1, len(vals)))))
	bars, err := plotter.NewBarChart(vals, vg.Points(width))
	if err != nil {
		return fmt.Errorf("ablation: plot %s: %w", path, err)
	}
	bars.Color = color.RGBA{R: 31, G: 119, B: 180, A: 255}
	bars.LineStyle.Width = 0
	p.Add(plotter.NewGrid(), bars)
	if len(names) <= 48 {
		p.NominalX(names...)
		if len(names) > 16 {
			p.X.Tick.Label.Rotation = math.Pi / 2
			p.X.Tick.Label.XAlign = draw.XRight
			p.X.Tick.Label.YAlign = draw.YCenter
		}
	} else {
		p.X.Label.Text = fmt.Sprintf("%d latents, ranked by Δ (largest: %s, %s, %s, …)", len(names), names[0], names[1], names[2])
	}
	if err := outfile.SavePlot(path, p, 24*vg.Centimeter, 11*vg.Centimeter); err != nil {
		return fmt.Errorf("ablation: plot %s: %w", path, err)
	}
	return nil
}

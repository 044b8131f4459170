package similarity

import (
	"bytes"
	"fmt"
	"github.com/perceiverkit/perceiver/internal/outfile"
	"image/color"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/perceiverkit/perceiver/viz"
)

// Definition returns a one-line statement of what the result's numbers are.
func (r *Result) Definition() string {
	switch r.Method {
	case CKA:
		return "linear CKA (Kornblith et al. 2019): ‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F) on column-centred features"
	case DebiasedCKA:
		return "debiased linear CKA: CKA with the unbiased HSIC estimator of Song et al. 2012 (near 0 for independent data even when n < d)"
	case RBFCKA:
		return fmt.Sprintf("RBF CKA: CKA of Gaussian kernels, bandwidth σ = %g × the median pairwise distance", r.RBFThreshold)
	case RSA:
		return fmt.Sprintf("RSA: %s of the upper triangles of the %s RDMs", r.Compare, r.RDM)
	}
	return string(r.Method)
}

// grid adapts a Result's matrix to plotter.GridXYZ: column c is AgainstColumns[c], row r is
// Columns[len−1−r] so that the first column is drawn at the top.
type grid struct{ m [][]float64 }

func (g grid) Dims() (c, r int)   { return len(g.m[0]), len(g.m) }
func (g grid) Z(c, r int) float64 { return g.m[len(g.m)-1-r][c] }
func (g grid) X(c int) float64    { return float64(c) }
func (g grid) Y(r int) float64    { return float64(r) }

// viridis is viz.Viridis as a gonum palette.
type viridis int

func (n viridis) Colors() []color.Color {
	out := make([]color.Color, int(n))
	for i := range out {
		out[i] = viz.Viridis(float64(i) / float64(int(n)-1))
	}
	return out
}

// PlotHeatmap saves the matrix as a PNG heatmap, rows and columns in the order of the result,
// values printed in the cells for up to 30 rows and columns. Colours: viridis from the smallest
// value (rounded down to a tenth) to max(1, largest), the range stated under the title; NaN cells
// grey.
func PlotHeatmap(path, title string, r *Result) error {
	rows, cols := len(r.Columns), len(r.AgainstColumns)
	if rows == 0 || cols == 0 {
		return fmt.Errorf("similarity: plot %s: empty matrix", path)
	}
	lo, hi := math.Inf(1), 1.0
	for _, row := range r.Matrix {
		for _, v := range row {
			if !math.IsNaN(v) {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	if math.IsInf(lo, 1) {
		lo = 0
	}
	lo = math.Floor(lo*10) / 10
	if lo >= hi {
		lo = hi - 0.1
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s\ncolours: %.1f (dark blue) … %.2g (yellow)", title, lo, hi)
	hm := plotter.NewHeatMap(grid{r.Matrix}, viridis(128))
	hm.Min, hm.Max = lo, hi
	hm.NaN = color.RGBA{R: 190, G: 190, B: 190, A: 255}
	p.Add(hm)
	xt := make(plot.ConstantTicks, cols)
	for j, name := range r.AgainstColumns {
		xt[j] = plot.Tick{Value: float64(j), Label: name}
	}
	yt := make(plot.ConstantTicks, rows)
	for i, name := range r.Columns {
		yt[i] = plot.Tick{Value: float64(rows - 1 - i), Label: name}
	}
	p.X.Tick.Marker, p.Y.Tick.Marker = xt, yt
	p.X.Tick.Label.Rotation = math.Pi / 4
	p.X.Tick.Label.XAlign = draw.XRight
	p.X.Tick.Label.YAlign = draw.YCenter
	if rows <= 30 && cols <= 30 {
		cells := plotter.XYLabels{}
		for i := range rows {
			for j := range cols {
				cells.XYs = append(cells.XYs, plotter.XY{X: float64(j), Y: float64(rows - 1 - i)})
				cells.Labels = append(cells.Labels, formatValue(r.Matrix[i][j], 2))
			}
		}
		labels, err := plotter.NewLabels(cells)
		if err != nil {
			return fmt.Errorf("similarity: plot %s: %w", path, err)
		}
		size := vg.Points(math.Max(5, math.Min(9, 200/float64(max(rows, cols)))))
		for k := range labels.TextStyle {
			labels.TextStyle[k].XAlign = draw.XCenter
			labels.TextStyle[k].YAlign = draw.YCenter
			labels.TextStyle[k].Font.Size = size
			// Dark text on the light (high) end of viridis, white on the dark end.
			v := r.Matrix[k/cols][k%cols]
			if math.IsNaN(v) || (v-lo)/(hi-lo) < 0.6 {
				labels.TextStyle[k].Color = color.White
			}
		}
		p.Add(labels)
	}
	p.X.Min, p.X.Max = -0.5, float64(cols)-0.5
	p.Y.Min, p.Y.Max = -0.5, float64(rows)-0.5
	w := vg.Length(math.Max(12, math.Min(40, 1.1*float64(cols)+6))) * vg.Centimeter
	h := vg.Length(math.Max(11, math.Min(40, 1.1*float64(rows)+6))) * vg.Centimeter
	if err := outfile.SavePlot(path, p, w, h); err != nil {
		return fmt.Errorf("similarity: plot %s: %w", path, err)
	}
	return nil
}

func formatValue(v float64, prec int) string {
	if math.IsNaN(v) {
		return "NaN"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

// Markdown renders the result as tables: the matrix (and the p-values when present), with the
// definition and the number of rows.
func (r *Result) Markdown() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "**%s** over n = %d rows.\n\n", r.Definition(), r.N)
	table := func(m [][]float64, prec int) {
		b.WriteString("| |")
		for _, c := range r.AgainstColumns {
			fmt.Fprintf(&b, " %s |", c)
		}
		b.WriteString("\n|---|")
		for range r.AgainstColumns {
			b.WriteString("---:|")
		}
		b.WriteString("\n")
		for i, row := range m {
			fmt.Fprintf(&b, "| %s |", r.Columns[i])
			for _, v := range row {
				fmt.Fprintf(&b, " %s |", formatValue(v, prec))
			}
			b.WriteString("\n")
		}
	}
	table(r.Matrix, 4)
	if r.PValues != nil {
		fmt.Fprintf(&b, "\nOne-sided permutation p-values (%d permutations of the second representation's rows, seed %d; smallest possible %.4g):\n\n",
			r.Permutations, r.Seed, 1/float64(r.Permutations+1))
		table(r.PValues, 4)
	}
	if r.Bandwidths != nil {
		b.WriteString("\nRBF bandwidths σ:")
		for i, s := range r.Bandwidths {
			fmt.Fprintf(&b, " %s %.4g;", r.Columns[i], s)
		}
		b.WriteString("\nagainst:")
		for i, s := range r.AgainstBandwidths {
			fmt.Fprintf(&b, " %s %.4g;", r.AgainstColumns[i], s)
		}
		b.WriteString("\n")
	}
	return b.Bytes()
}

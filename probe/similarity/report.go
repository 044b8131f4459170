package similarity

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/perceiverkit/perceiver/internal/outfile"
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
	case MutualKNN:
		return fmt.Sprintf("mutual k-NN alignment (Huh et al. 2024), K = %d: the mean fraction of each row's K nearest rows by cosine (self excluded) shared by the two representations; 1 = identical neighbourhoods", r.KNNK)
	case CKNNA:
		return fmt.Sprintf("CKNNA (Huh et al. 2024), K = %d: unbiased-HSIC CKA of the cosine kernels restricted to the pairs that are among the K nearest neighbours in both; /(√·+1e-6) as platonic-rep, so a representation against itself is just under 1", r.KNNK)
	case SVCCA:
		return fmt.Sprintf("SVCCA (Raghu et al. 2017): mean canonical correlation of the top %d singular directions of each side (rows unit-normalised, columns standardised; exact SVD)", r.SVCCADims)
	case Procrustes:
		return "angular Procrustes distance (Williams et al. 2021; netrep LinearMetric(alpha=1)): arccos(‖XcᵀYc‖_* / (‖Xc‖_F‖Yc‖_F)) on column-centred features, in radians; distance, smaller = more similar"
	case AngularCKA:
		return "angular CKA distance (Williams et al. 2021): arccos(linear CKA), in radians; distance, smaller = more similar"
	}
	return string(r.Method)
}

// Scale returns the fixed colour range of the method's heatmap and its label: [0, π/2] radians
// for the distances, [−1, 1] for RSA, [0, 1] for the other similarities.
func (r *Result) Scale() (lo, hi float64, label string) {
	switch {
	case r.Distance:
		return 0, math.Pi / 2, "distance (radians), smaller = more similar"
	case r.Method == RSA:
		return -1, 1, "similarity (" + r.Compare + " correlation)"
	}
	return 0, 1, "similarity, larger = more similar"
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
// values printed in the cells for up to 30 rows and columns, and a colour bar. Colours: viridis
// over the method's fixed range (Result.Scale, stated under the title; values outside it are
// drawn at its ends); NaN cells grey. Distances say so in the title.
func PlotHeatmap(path, title string, r *Result) error {
	rows, cols := len(r.Columns), len(r.AgainstColumns)
	if rows == 0 || cols == 0 {
		return fmt.Errorf("similarity: plot %s: empty matrix", path)
	}
	lo, hi, label := r.Scale()
	outside := false
	for _, row := range r.Matrix {
		for _, v := range row {
			outside = outside || v < lo || v > hi
		}
	}
	clamped := make([][]float64, rows)
	for i, row := range r.Matrix {
		clamped[i] = make([]float64, cols)
		for j, v := range row {
			clamped[i][j] = v
			if !math.IsNaN(v) {
				clamped[i][j] = math.Max(lo, math.Min(hi, v))
			}
		}
	}
	p := plot.New()
	sub := fmt.Sprintf("%s; colours %s … %s", label, formatTick(lo), formatTick(hi))
	if outside {
		sub += " (values outside drawn at the ends)"
	}
	p.Title.Text = title + "\n" + sub
	hm := plotter.NewHeatMap(grid{clamped}, viridis(128))
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
			v := clamped[k/cols][k%cols]
			if math.IsNaN(v) || (v-lo)/(hi-lo) < 0.6 {
				labels.TextStyle[k].Color = color.White
			}
		}
		p.Add(labels)
	}
	p.X.Min, p.X.Max = -0.5, float64(cols)-0.5
	p.Y.Min, p.Y.Max = -0.5, float64(rows)-0.5

	bar := plot.New()
	bar.Title.Text = "\n" // the heatmap's two title lines, so that the bar starts level with it
	bar.Add(&plotter.ColorBar{ColorMap: &viridisMap{min: lo, max: hi}, Vertical: true})
	bar.HideX()
	bar.Y.Label.Text = "similarity"
	if r.Distance {
		bar.Y.Label.Text = "distance (radians)"
	}
	bar.Y.Min, bar.Y.Max = lo, hi

	barW := 3.5 * vg.Centimeter
	w := vg.Length(math.Max(12, math.Min(40, 1.1*float64(cols)+6)))*vg.Centimeter + barW
	// Wide enough for the longest title line (the heatmap is narrow with few columns).
	for _, line := range strings.Split(p.Title.Text, "\n") {
		w = max(w, p.Title.TextStyle.Width(line)+barW+vg.Centimeter)
	}
	h := vg.Length(math.Max(11, math.Min(40, 1.1*float64(rows)+6))) * vg.Centimeter
	img := vgimg.New(w, h)
	dc := draw.New(img)
	// A margin on the left: gonum/plot's axis sizing leaves the first letters of long row names
	// at the very edge.
	p.Draw(draw.Crop(dc, 0.5*vg.Centimeter, -barW, 0, 0))
	bar.Draw(draw.Crop(dc, w-barW, -0.8*vg.Centimeter, 2.2*vg.Centimeter, 0))
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return fmt.Errorf("similarity: plot %s: %w", path, err)
	}
	if err := outfile.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("similarity: plot %s: %w", path, err)
	}
	return nil
}

// formatTick prints a scale end: π/2 as such, other values plainly.
func formatTick(v float64) string {
	if v == math.Pi/2 {
		return "π/2"
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// viridisMap is viz.Viridis over [min, max] as a gonum palette.ColorMap, for the colour bar.
type viridisMap struct{ min, max float64 }

func (m *viridisMap) At(v float64) (color.Color, error) {
	return viz.Viridis((v - m.min) / (m.max - m.min)), nil
}
func (m *viridisMap) Max() float64     { return m.max }
func (m *viridisMap) SetMax(v float64) { m.max = v }
func (m *viridisMap) Min() float64     { return m.min }
func (m *viridisMap) SetMin(v float64) { m.min = v }
func (m *viridisMap) Alpha() float64   { return 1 }
func (m *viridisMap) SetAlpha(float64) {}
func (m *viridisMap) Palette(n int) palette.Palette {
	return viridis(n)
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
	if r.Distance {
		b.WriteString("Values are **distances in radians** (0 … π/2 ≈ 1.5708): **smaller = more similar**, 0 = identical up to the measure's invariances.\n\n")
	}
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

package viz

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/palette"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgpdf"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/perceiverkit/perceiver/internal/outfile"
)

// Scale is the colour scale a figure's colour bar shows.
type Scale struct {
	Min, Max float64
	Colormap Colormap // nil: Viridis
}

// Figure is a grid of titled maps, with an optional colour bar on the right for maps drawn over
// one shared Scale.
type Figure struct {
	Tiles []Tile
	Cols  int    // tiles per row; 0: all in one row
	Scale *Scale // nil: no colour bar
}

func (f Figure) cols() int {
	if f.Cols <= 0 || f.Cols > len(f.Tiles) {
		return max(1, len(f.Tiles))
	}
	return f.Cols
}

// Image renders the figure as a raster image: Montage of the tiles, then the colour bar.
func (f Figure) Image() *image.RGBA {
	img := Montage(f.Tiles, f.cols())
	if f.Scale == nil {
		return img
	}
	return WithColorbar(img, f.Scale.Min, f.Scale.Max, f.Scale.Colormap)
}

// Formats lists the file formats of SaveFigure and WriteFigure.
var Formats = []string{"png", "svg", "pdf"}

// SavePNG writes img to path as PNG.
func SavePNG(path string, img image.Image) error {
	return saveFile(path, func(w io.Writer) error { return png.Encode(w, img) })
}

// SaveFigure writes f to path in the format its extension names: .png (the raster of
// Figure.Image), .svg or .pdf (vector titles and scale, maps embedded as images).
func SaveFigure(path string, f Figure) error {
	format := strings.TrimPrefix(strings.ToLower(filepath.Ext(path)), ".")
	if !isFormat(format) {
		return fmt.Errorf("figure %s: unknown format %q (want %s)", path, filepath.Ext(path), strings.Join(Formats, ", "))
	}
	return saveFile(path, func(w io.Writer) error { return WriteFigure(w, format, f) })
}

func isFormat(format string) bool {
	for _, f := range Formats {
		if f == format {
			return true
		}
	}
	return false
}

// saveFile writes through the one safe writer: a temporary name renamed into place, so a failed
// encode leaves nothing and a symlink or FIFO at path is refused, never written through.
func saveFile(path string, write func(io.Writer) error) error {
	return outfile.Write(path, write)
}

// Vector layout, in points.
const (
	vecCell     = vg.Length(144) // width of a map: 2 inches
	vecPad      = vg.Length(8)
	vecTitle    = vg.Length(14)
	vecFontSize = vg.Length(9)
	vecBar      = vg.Length(56) // colour bar with its tick labels
	minEmbedded = 256           // smaller maps are enlarged (nearest) before embedding
)

// WriteFigure writes f to w as "png", "svg" or "pdf".
func WriteFigure(w io.Writer, format string, f Figure) error {
	if format == "png" {
		return png.Encode(w, f.Image())
	}
	if !isFormat(format) {
		return fmt.Errorf("unknown figure format %q (want %s)", format, strings.Join(Formats, ", "))
	}
	if len(f.Tiles) == 0 {
		return errors.New("figure has no tiles")
	}
	cols := f.cols()
	rows := (len(f.Tiles) + cols - 1) / cols
	// All cells share the aspect ratio of the first tile, as maps of one model do.
	b0 := f.Tiles[0].Image.Bounds()
	imgH := vecCell * vg.Length(b0.Dy()) / vg.Length(b0.Dx())
	cellH := vecTitle + imgH
	width := vecPad + vg.Length(cols)*(vecCell+vecPad)
	if f.Scale != nil {
		width += vecBar
	}
	height := vecPad + vg.Length(rows)*(cellH+vecPad)

	var canvas vg.CanvasWriterTo
	if format == "svg" {
		canvas = vgsvg.New(width, height)
	} else {
		canvas = vgpdf.New(width, height)
	}
	dc := draw.New(canvas)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())

	title := draw.TextStyle{
		Color:   color.Black,
		Font:    font.From(plot.DefaultFont, vecFontSize),
		XAlign:  draw.XLeft,
		YAlign:  draw.YBottom,
		Handler: plot.DefaultTextHandler,
	}
	for i, t := range f.Tiles {
		x := vecPad + vg.Length(i%cols)*(vecCell+vecPad)
		top := height - vecPad - vg.Length(i/cols)*(cellH+vecPad) // vg's y axis points up
		dc.FillText(title, vg.Point{X: x, Y: top - vecTitle + 3}, t.Title)
		dc.DrawImage(vg.Rectangle{
			Min: vg.Point{X: x, Y: top - cellH},
			Max: vg.Point{X: x + vecCell, Y: top - vecTitle},
		}, orient(enlarge(t.Image), format))
	}
	if f.Scale != nil {
		if err := drawVectorColorbar(dc, format, *f.Scale, width-vecBar, vecPad, height-vecPad-vecTitle, title); err != nil {
			return err
		}
	}
	if format == "pdf" {
		_, err := canvas.WriteTo(w)
		return err
	}
	// vgsvg labels its embedded PNGs "image/jpg"; strict renderers (librsvg) then drop them.
	// Base64 has no ';', so the label can only match where vgsvg wrote it.
	var buf bytes.Buffer
	if _, err := canvas.WriteTo(&buf); err != nil {
		return err
	}
	_, err := w.Write(bytes.ReplaceAll(buf.Bytes(), []byte("data:image/jpg;base64,"), []byte("data:image/png;base64,")))
	return err
}

// drawVectorColorbar draws the scale in the column starting at x, from y0 to y1: a colour strip
// and gonum/plot's default ticks. The strip image has the strip's aspect ratio, since SVG
// viewers fit images into their box keeping the ratio.
func drawVectorColorbar(dc draw.Canvas, format string, s Scale, x, y0, y1 vg.Length, style draw.TextStyle) error {
	if !(s.Max > s.Min) {
		return fmt.Errorf("colour bar range [%v, %v] is empty", s.Min, s.Max)
	}
	cm := s.Colormap
	if cm == nil {
		cm = Viridis
	}
	const rows = 256
	stripW := vg.Length(12)
	cols := max(1, int(math.Round(float64(rows*stripW/(y1-y0)))))
	strip := image.NewRGBA(image.Rect(0, 0, cols, rows))
	for y := range rows {
		c := cm(1 - (float64(y)+0.5)/rows)
		for x := range cols {
			strip.SetRGBA(x, y, c)
		}
	}
	dc.DrawImage(vg.Rectangle{Min: vg.Point{X: x, Y: y0}, Max: vg.Point{X: x + stripW, Y: y1}}, orient(strip, format))

	dc.SetColor(color.Black)
	dc.SetLineWidth(0.5)
	style.XAlign, style.YAlign = draw.XLeft, draw.YCenter
	for _, tick := range (plot.DefaultTicks{}).Ticks(s.Min, s.Max) {
		if tick.Label == "" || tick.Value < s.Min || tick.Value > s.Max {
			continue
		}
		y := y0 + (y1-y0)*vg.Length((tick.Value-s.Min)/(s.Max-s.Min))
		right := x + stripW
		dc.StrokeLine2(draw.LineStyle{Color: color.Black, Width: 0.5}, right-3, y, right+3, y)
		dc.FillText(style, vg.Point{X: right + 5, Y: y}, tick.Label)
	}
	return nil
}

// orient returns img as the canvas must receive it: gonum/plot's PDF canvas (v0.17) draws images
// upside down, so they go to it flipped; the SVG canvas takes them as they are.
func orient(img image.Image, format string) image.Image {
	if format != "pdf" {
		return img
	}
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := range b.Dy() {
		for x := range b.Dx() {
			out.Set(x, b.Dy()-1-y, img.At(b.Min.X+x, b.Min.Y+y))
		}
	}
	return out
}

// enlarge returns img scaled up by an integer factor with nearest neighbour so that small maps
// keep crisp cells in viewers that smooth embedded images.
func enlarge(img image.Image) image.Image {
	b := img.Bounds()
	side := max(b.Dx(), b.Dy())
	if side == 0 || side >= minEmbedded {
		return img
	}
	k := (minEmbedded + side - 1) / side
	out := image.NewRGBA(image.Rect(0, 0, k*b.Dx(), k*b.Dy()))
	for y := range out.Rect.Dy() {
		for x := range out.Rect.Dx() {
			out.Set(x, y, img.At(b.Min.X+x/k, b.Min.Y+y/k))
		}
	}
	return out
}

// plotColorMap adapts a Colormap over [min, max] to gonum/plot's palette.ColorMap.
type plotColorMap struct {
	cm       Colormap
	min, max float64
	alpha    float64 // unused: maps are opaque
}

func (p *plotColorMap) At(v float64) (color.Color, error) {
	switch {
	case v < p.min:
		return nil, palette.ErrUnderflow
	case v > p.max:
		return nil, palette.ErrOverflow
	}
	return p.cm((v - p.min) / (p.max - p.min)), nil
}
func (p *plotColorMap) Max() float64       { return p.max }
func (p *plotColorMap) SetMax(v float64)   { p.max = v }
func (p *plotColorMap) Min() float64       { return p.min }
func (p *plotColorMap) SetMin(v float64)   { p.min = v }
func (p *plotColorMap) Alpha() float64     { return 1 }
func (p *plotColorMap) SetAlpha(a float64) { p.alpha = a }
func (p *plotColorMap) Palette(n int) palette.Palette {
	colors := make([]color.Color, n)
	for i := range colors {
		colors[i] = p.cm(float64(i) / float64(max(1, n-1)))
	}
	return colorList(colors)
}

type colorList []color.Color

func (c colorList) Colors() []color.Color { return c }

package viz

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"strconv"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Layout of raster figures, in pixels. Text is basicfont's 7×13 face: legible at 1:1 and free of
// font files.
const (
	pad         = 6  // around and between tiles
	titleHeight = 16 // one line of text above a tile
	barWidth    = 14 // the colour strip of a colour bar
	tickLength  = 4
	glyphWidth  = 7
	maxTile     = 1 << 14 // larger tiles are taken for unbounded images such as image.Uniform
)

var (
	background = color.RGBA{255, 255, 255, 255}
	ink        = color.RGBA{0, 0, 0, 255}
)

// Tile is one titled panel of a montage.
type Tile struct {
	Image image.Image
	Title string
}

// Montage lays tiles out in rows of cols, each under its title, on a white background. Cells are
// as large as the largest tile; smaller tiles sit at their cell's top left. Titles longer than a
// cell are cut short with "..".
func Montage(tiles []Tile, cols int) *image.RGBA {
	if cols <= 0 {
		panic(&HeatmapShapeError{Func: "Montage", Detail: fmt.Sprintf("cols = %d, want > 0", cols)})
	}
	if len(tiles) == 0 {
		return image.NewRGBA(image.Rect(0, 0, 0, 0))
	}
	cols = min(cols, len(tiles))
	rows := (len(tiles) + cols - 1) / cols
	cellW, cellH := 0, 0
	for i, t := range tiles {
		b := t.Image.Bounds()
		if b.Dx() > maxTile || b.Dy() > maxTile {
			panic(&HeatmapShapeError{Func: "Montage", Detail: fmt.Sprintf("tile %d is %v: unbounded image?", i, b)})
		}
		cellW, cellH = max(cellW, b.Dx()), max(cellH, b.Dy())
	}
	cellH += titleHeight
	out := image.NewRGBA(image.Rect(0, 0, pad+cols*(cellW+pad), pad+rows*(cellH+pad)))
	draw.Draw(out, out.Bounds(), image.NewUniform(background), image.Point{}, draw.Src)
	for i, t := range tiles {
		x := pad + (i%cols)*(cellW+pad)
		y := pad + (i/cols)*(cellH+pad)
		drawText(out, x, y, fitText(t.Title, cellW))
		b := t.Image.Bounds()
		draw.Draw(out, image.Rect(x, y+titleHeight, x+b.Dx(), y+titleHeight+b.Dy()), t.Image, b.Min, draw.Src)
	}
	return out
}

// Colorbar draws a vertical colour scale height pixels tall for values lo (bottom) … hi (top),
// with ticks and labels at both ends and the middle, on a white background.
func Colorbar(height int, lo, hi float64, cm Colormap) *image.RGBA {
	if cm == nil {
		cm = Viridis
	}
	labels := []string{formatTick(hi), formatTick((lo + hi) / 2), formatTick(lo)}
	textW := 0
	for _, l := range labels {
		textW = max(textW, len([]rune(l))*glyphWidth)
	}
	height = max(height, 3*titleHeight)
	top := titleHeight / 2 // room for the top label's upper half
	stripH := height - 2*top
	out := image.NewRGBA(image.Rect(0, 0, barWidth+3+textW+pad, height))
	draw.Draw(out, out.Bounds(), image.NewUniform(background), image.Point{}, draw.Src)
	for y := range stripH {
		// Row y shows the value at its centre, top row = hi.
		c := cm(1 - (float64(y)+0.5)/float64(stripH))
		for x := range barWidth {
			out.SetRGBA(x, top+y, c)
		}
	}
	for i, l := range labels {
		y := top + i*(stripH-1)/2
		// Ticks cut into the strip's right edge: outside it they would read as minus signs.
		for x := barWidth - tickLength; x < barWidth; x++ {
			out.SetRGBA(x, y, ink)
		}
		drawText(out, barWidth+3, y-titleHeight/2, l)
	}
	return out
}

// WithColorbar returns img with a colour bar for lo … hi to its right, as tall as img.
func WithColorbar(img image.Image, lo, hi float64, cm Colormap) *image.RGBA {
	b := img.Bounds()
	bar := Colorbar(b.Dy(), lo, hi, cm)
	bb := bar.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx()+pad+bb.Dx(), max(b.Dy(), bb.Dy())))
	draw.Draw(out, out.Bounds(), image.NewUniform(background), image.Point{}, draw.Src)
	draw.Draw(out, image.Rect(0, 0, b.Dx(), b.Dy()), img, b.Min, draw.Src)
	draw.Draw(out, bb.Add(image.Pt(b.Dx()+pad, 0)), bar, image.Point{}, draw.Src)
	return out
}

// formatTick prints a value in at most 4 significant digits, as short as possible.
func formatTick(v float64) string {
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// fitText cuts s to fit width pixels.
func fitText(s string, width int) string {
	r := []rune(s)
	fit := width / glyphWidth
	if len(r) <= fit {
		return s
	}
	if fit <= 2 {
		return ""
	}
	return string(r[:fit-2]) + ".." // basicfont has no "…"
}

// drawText writes s in a line of titleHeight pixels whose top left is (x, y).
func drawText(dst draw.Image, x, y int, s string) {
	d := font.Drawer{
		Dst:  dst,
		Src:  image.NewUniform(ink),
		Face: basicfont.Face7x13,
		Dot:  fixed.P(x, y+basicfont.Face7x13.Ascent+(titleHeight-basicfont.Face7x13.Height)/2),
	}
	d.DrawString(s)
}

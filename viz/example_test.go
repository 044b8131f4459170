package viz_test

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"os"
	"path/filepath"

	"github.com/perceiverkit/perceiver/viz"
)

// A 2×3 attention map: row-major, value (row, col) at row*3 + col.
var exampleMap = []float32{
	0.0, 0.1, 0.2,
	0.1, 0.2, 0.4,
}

func ExampleViridis() {
	fmt.Println(viz.Viridis(0), viz.Viridis(0.5), viz.Viridis(1))
	// Output: {68 1 84 255} {33 145 140 255} {253 231 37 255}
}

func ExampleGray() {
	fmt.Println(viz.Gray(0), viz.Gray(1))
	// Output: {0 0 0 255} {255 255 255 255}
}

func ExampleRange() {
	fmt.Println(viz.Range(exampleMap))
	// Output: 0 0.4000000059604645
}

func ExampleHeatmapOptions_Limits() {
	shared := viz.HeatmapOptions{Min: 0, Max: 1} // one scale for several maps
	fmt.Println(shared.Limits(exampleMap))
	fmt.Println(viz.HeatmapOptions{}.Limits(exampleMap))
	// Output:
	// 0 1
	// 0 0.4000000059604645
}

func ExampleHeatmap() {
	img := viz.Heatmap(exampleMap, 2, 3, viz.HeatmapOptions{Width: 30, Height: 20}) // 10×10 blocks
	fmt.Println(img.Bounds(), img.RGBAAt(0, 0) == viz.Viridis(0), img.RGBAAt(29, 19) == viz.Viridis(1))
	// Output: (0,0)-(30,20) true true
}

func ExampleDrawHeatmap() {
	dst := image.NewRGBA(image.Rect(0, 0, 3, 2)) // reused across maps: no allocation
	viz.DrawHeatmap(dst, exampleMap, 2, 3, viz.HeatmapOptions{})
	fmt.Println(dst.RGBAAt(2, 1))
	// Output: {253 231 37 255}
}

func ExampleOverlay() {
	photo := image.NewRGBA(image.Rect(0, 0, 3, 2))
	for i := range photo.Pix {
		photo.Pix[i] = 255 // white
	}
	img := viz.Overlay(photo, exampleMap, 2, 3, 0.5, viz.HeatmapOptions{})
	fmt.Println(img.RGBAAt(0, 0)) // halfway between white and Viridis(0) = {68 1 84}, to 8 bits
	// Output: {161 128 169 255}
}

func ExampleDrawOverlay() {
	photo := image.NewUniform(color.RGBA{0, 0, 0, 255})
	dst := image.NewRGBA(image.Rect(0, 0, 6, 4)) // the map is stretched to dst
	viz.DrawOverlay(dst, photo, exampleMap, 2, 3, 1, viz.HeatmapOptions{})
	fmt.Println(dst.RGBAAt(5, 3) == viz.Viridis(1))
	// Output: true
}

func ExampleColorbar() {
	bar := viz.Colorbar(100, 0, 0.4, viz.Viridis)
	fmt.Println(bar.Bounds().Dy())
	// Output: 100
}

func ExampleWithColorbar() {
	lo, hi := viz.Range(exampleMap)
	img := viz.WithColorbar(viz.Heatmap(exampleMap, 2, 3, viz.HeatmapOptions{Width: 96, Height: 64}), lo, hi, nil)
	fmt.Println(img.Bounds().Dy(), img.Bounds().Dx() > 96)
	// Output: 64 true
}

func ExampleMontage() {
	tiles := []viz.Tile{
		{Image: viz.Heatmap(exampleMap, 2, 3, viz.HeatmapOptions{Width: 60, Height: 40}), Title: "latent 0"},
		{Image: viz.Heatmap(exampleMap, 2, 3, viz.HeatmapOptions{Width: 60, Height: 40}), Title: "latent 1"},
	}
	fmt.Println(viz.Montage(tiles, 2).Bounds())
	// Output: (0,0)-(138,68)
}

func ExampleFigure_Image() {
	fig := viz.Figure{
		Tiles: []viz.Tile{{Image: viz.Heatmap(exampleMap, 2, 3, viz.HeatmapOptions{Width: 60, Height: 40}), Title: "mean"}},
		Scale: &viz.Scale{Min: 0, Max: 0.4},
	}
	fmt.Println(fig.Image().Bounds().Dy())
	// Output: 68
}

func ExampleSavePNG() {
	dir, _ := os.MkdirTemp("", "viz")
	defer os.RemoveAll(dir)
	err := viz.SavePNG(filepath.Join(dir, "map.png"), viz.Heatmap(exampleMap, 2, 3, viz.HeatmapOptions{}))
	fmt.Println(err)
	// Output: <nil>
}

func ExampleSaveFigure() {
	dir, _ := os.MkdirTemp("", "viz")
	defer os.RemoveAll(dir)
	fig := viz.Figure{Tiles: []viz.Tile{{Image: viz.Heatmap(exampleMap, 2, 3, viz.HeatmapOptions{}), Title: "decoder"}}}
	for _, name := range []string{"maps.png", "maps.svg", "maps.pdf", "maps.gif"} {
		err := viz.SaveFigure(filepath.Join(dir, name), fig)
		fmt.Println(name, err != nil)
	}
	// Output:
	// maps.png false
	// maps.svg false
	// maps.pdf false
	// maps.gif true
}

func ExampleWriteFigure() {
	var buf bytes.Buffer
	fig := viz.Figure{Tiles: []viz.Tile{{Image: viz.Heatmap(exampleMap, 2, 3, viz.HeatmapOptions{}), Title: "rollout"}}}
	err := viz.WriteFigure(&buf, "svg", fig)
	fmt.Println(err, bytes.Contains(buf.Bytes(), []byte("rollout")))
	// Output: <nil> true
}

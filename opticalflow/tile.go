package opticalflow

import (
	"fmt"
)

// MinOverlap is the least overlap of neighbouring tiles, in pixels: DeepMind's colab value.
const MinOverlap = 20

// TileOrigins returns the top-left corners (y, x) of the tiles of size tile (height, width) that
// cover an h×w frame: along each axis every tile−minOverlap pixels from 0, the last one moved back
// to be flush with the far border (and dropped if that repeats the one before). Rows of tiles come
// first.
func TileOrigins(h, w int, tile [2]int, minOverlap int) ([][2]int, error) {
	if h < tile[0] || w < tile[1] {
		return nil, fmt.Errorf("frames of %d×%d are smaller than the model's %d×%d: the optical flow model needs at least its training size", h, w, tile[0], tile[1])
	}
	if minOverlap < 0 || minOverlap >= tile[0] || minOverlap >= tile[1] {
		return nil, fmt.Errorf("tile overlap %d must be at least 0 and less than the tile size %d×%d", minOverlap, tile[0], tile[1])
	}
	axis := func(n, t int) []int {
		var o []int
		for p := 0; p < n; p += t - minOverlap {
			o = append(o, p)
		}
		o[len(o)-1] = n - t
		if len(o) > 1 && o[len(o)-2] == n-t {
			// DeepMind's rule can repeat the last tile; run it once (the blend is the same).
			o = o[:len(o)-1]
		}
		return o
	}
	var out [][2]int
	for _, y := range axis(h, tile[0]) {
		for _, x := range axis(w, tile[1]) {
			out = append(out, [2]int{y, x})
		}
	}
	return out, nil
}

// TileWeight is the blending weight of pixel (y, x) of a tile of size tile: its distance in
// pixels to the tile's nearest border, counting the border pixel as 1.
func TileWeight(y, x int, tile [2]int) float32 {
	return float32(min(y+1, tile[0]-y, x+1, tile[1]-x))
}

// TileFunc computes the flow [th, tw, 2] of one tile of frames [2, 3, th, tw], in any units.
type TileFunc func(frames []float32) ([]float32, error)

// Tiled computes the flow [h, w, 2] of frames [2, 3, h, w] tile by tile (see the package
// conventions), calling each after every tile with the number of tiles done and the total.
func Tiled(frames []float32, h, w int, tile [2]int, minOverlap int, flow TileFunc, each func(done, total int)) ([]float32, error) {
	if len(frames) != 6*h*w {
		return nil, fmt.Errorf("frames have %d values, want 2×3×%d×%d", len(frames), h, w)
	}
	origins, err := TileOrigins(h, w, tile, minOverlap)
	if err != nil {
		return nil, err
	}
	th, tw := tile[0], tile[1]
	if len(origins) == 1 { // frames of the tile's size: the flow as computed, not divided by its weights
		f, err := flow(frames)
		if err == nil && len(f) != 2*th*tw {
			err = fmt.Errorf("flow of %d values, want %d×%d×2", len(f), th, tw)
		}
		if err != nil {
			return nil, err
		}
		if each != nil {
			each(1, 1)
		}
		return f, nil
	}
	sum := make([]float32, 2*h*w)
	weight := make([]float32, h*w)
	for i, o := range origins {
		f, err := flow(Crop(frames, h, w, o, tile))
		if err != nil {
			return nil, fmt.Errorf("tile at (%d, %d): %w", o[0], o[1], err)
		}
		if len(f) != 2*th*tw {
			return nil, fmt.Errorf("tile at (%d, %d): flow of %d values, want %d×%d×2", o[0], o[1], len(f), th, tw)
		}
		for y := 0; y < th; y++ {
			for x := 0; x < tw; x++ {
				wt := TileWeight(y, x, tile)
				p := (o[0]+y)*w + o[1] + x
				sum[2*p] += wt * f[2*(y*tw+x)]
				sum[2*p+1] += wt * f[2*(y*tw+x)+1]
				weight[p] += wt
			}
		}
		if each != nil {
			each(i+1, len(origins))
		}
	}
	for p, wt := range weight {
		sum[2*p] /= wt
		sum[2*p+1] /= wt
	}
	return sum, nil
}

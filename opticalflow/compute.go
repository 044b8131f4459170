package opticalflow

import (
	"fmt"

	"github.com/perceiverkit/perceiver/core"
)

// Compute runs the optical flow model m on frames [2, 3, h, w] (h×w at least the training size),
// tiled with tiles overlapping by at least minOverlap pixels (MinOverlap in DeepMind's colab), and
// returns the flow [h, w, 2] in the model's units (Hugging Face's: pixels/20; see Pixels). each,
// when set, is called after every tile.
func Compute(m *core.Model, frames []float32, h, w, minOverlap int, each func(done, total int)) ([]float32, error) {
	size, ok := m.TrainSize()
	if !ok {
		return nil, fmt.Errorf("the %s model is not an optical flow model", m.Weights.Input.Kind())
	}
	return Tiled(frames, h, w, size, minOverlap, func(tile []float32) ([]float32, error) {
		out, err := m.ForwardFrames(tile, 1, size[0], size[1], core.Trace{})
		if err != nil {
			return nil, err
		}
		return out.Flow, nil
	}, each)
}

// Pixels turns the model's flow [h, w, 2] (Hugging Face's units) into a Field in pixels:
// core.FlowScale (20) times the values, DeepMind's FLOW_SCALE_FACTOR.
func Pixels(raw []float32, h, w int) *Field {
	f := &Field{H: h, W: w, UV: make([]float32, len(raw))}
	for i, v := range raw {
		f.UV[i] = v * core.FlowScale
	}
	return f
}

// BestTile returns the origin of the tile in which pixel (y, x) of an h×w frame has the largest
// blending weight: the tile that sees the most context around it, for drawing what informed the
// flow there.
func BestTile(h, w int, tile [2]int, minOverlap, y, x int) ([2]int, error) {
	origins, err := TileOrigins(h, w, tile, minOverlap)
	if err != nil {
		return [2]int{}, err
	}
	best, bw := origins[0], float32(-1)
	for _, o := range origins {
		ty, tx := y-o[0], x-o[1]
		if ty < 0 || ty >= tile[0] || tx < 0 || tx >= tile[1] {
			continue
		}
		if wt := TileWeight(ty, tx, tile); wt > bw {
			best, bw = o, wt
		}
	}
	return best, nil
}

// Crop copies the tile of size tile at origin o out of frames [2, 3, h, w] into a new [2, 3, th, tw].
func Crop(frames []float32, h, w int, o, tile [2]int) []float32 {
	th, tw := tile[0], tile[1]
	piece := make([]float32, 6*th*tw)
	for c := 0; c < 6; c++ {
		for y := 0; y < th; y++ {
			copy(piece[(c*th+y)*tw:(c*th+y+1)*tw], frames[(c*h+o[0]+y)*w+o[1]:])
		}
	}
	return piece
}

// Package opticalflow turns the Perceiver IO optical flow model (core's PerceiverForOpticalFlow)
// into flow fields for frames of any size at least the training size, and writes them as
// Middlebury .flo files and colour-coded pictures.
//
// Conventions:
//   - A flow field is row-major [H, W, 2]: (u, v) at index 2·(y·W + x), u the displacement along
//     the width (x, to the right), v along the height (y, down), from the first frame to the
//     second.
//   - Field holds pixels. The model's output (core.Output.Flow, Hugging Face's units) is in
//     pixels/20: DeepMind multiplies it by FLOW_SCALE_FACTOR = 20 (core.FlowScale). Raw keeps the
//     model's units.
//   - Frames are core's input [2, 3, H, W], channel-major, normalised to [−1, 1]
//     (preprocess.FlowFrames).
//   - Frames larger than the training size are tiled as DeepMind's optical flow colab does: tile
//     origins every (size − MinOverlap) pixels along each axis, the last tile moved back to be
//     flush with the far border; each tile's flow is weighted by min(y+1, th−y, x+1, tw−x) (a
//     pyramid, 1 at the tile's border) and the weighted sums are divided by the summed weights.
//     Frames of exactly the training size are one tile and get the model's output unchanged.
//   - .flo files are Middlebury's: the float32 202021.25 ("PIEH"), int32 width, int32 height, then
//     u, v float32 interleaved row by row; all little-endian.
//   - Colours follow the Middlebury colour wheel (Baker et al., "A Database and Evaluation
//     Methodology for Optical Flow", IJCV 2011): 55 hues (red→yellow 15, yellow→green 6,
//     green→cyan 4, cyan→blue 11, blue→magenta 13, magenta→red 6), the hue given by the flow's
//     direction and the saturation by its length over the largest length shown.
package opticalflow

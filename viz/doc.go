// Package viz draws attention maps: colour-mapped heatmaps, overlays on the image the model saw,
// colour bars, titled montages, and figures saved as PNG, SVG or PDF.
//
// Conventions:
//   - A map is a row-major []float32 of h·w values, value (row, col) at index row*w + col, as the
//     attention package produces them (H×W input positions, top row first).
//   - Values go to colours through a Colormap over t ∈ [0, 1], t = (v − Min)/(Max − Min) clamped;
//     the range is the map's own finite min..max unless given (give one range to compare maps).
//     NaN cells are drawn in NaNColor. Signed maps (attributions) use Diverging over
//     SymmetricRange, so that zero is white and the sign reads as hue.
//   - When the output is larger than the map, each cell becomes a block of pixels (nearest
//     neighbour), so a 224×224 map on a 224×224 image is drawn pixel for pixel; Smooth
//     interpolates values bilinearly between cell centres instead.
//   - Raster drawing writes into an *image.RGBA the caller may reuse (Draw… functions allocate
//     nothing); the Heatmap, Overlay, Colorbar and Montage conveniences allocate their result.
//   - SVG and PDF go through gonum/plot, embedding the raster maps with vector titles and scales.
package viz

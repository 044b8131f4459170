// Package fourier builds the Fourier position features that the Perceiver IO image model appends to
// every pixel.
//
// Conventions, matching Hugging Face's PerceiverFourierPositionEncoding:
//   - positions lie on [-1, 1] per axis, linspace(-1, 1, size), row axis first;
//   - the frequencies of axis a are linspace(1, MaxResolution[a]/2, NumBands);
//   - the features of one position are laid out as
//     [p_0, p_1, sin(π·f·p) for every (axis, band), cos(π·f·p) for every (axis, band)],
//     feature index axis*NumBands + band inside each sin/cos group;
//   - a grid of H×W positions is row-major: position index row*W + col;
//   - every channel is a function of one axis only (Spec.Axis tells which), which the model's
//     encoder relies on to attend over the grid by rows and columns.
//
// Arithmetic is float32 step by step, as in PyTorch, so the features agree with the reference to
// the last bit or two.
package fourier

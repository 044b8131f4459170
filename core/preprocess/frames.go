package preprocess

import "fmt"

// FlowFrames turns two frames of the same size into the optical flow model's input [2, 3, H, W]
// (channel-major, first frame first): each colour value x becomes x/255·2 − 1, in float64 rounded
// to float32, as DeepMind's optical flow colab normalises its frames. The flow model uses no
// crop, resize or mean/std normalisation, so the processor Config plays no part.
func FlowFrames(first, second *RGB) ([]float32, error) {
	if first.W != second.W || first.H != second.H {
		return nil, fmt.Errorf("frames differ in size: %d×%d and %d×%d (width×height)", first.W, first.H, second.W, second.H)
	}
	n := first.W * first.H
	out := make([]float32, 6*n)
	for t, img := range []*RGB{first, second} {
		if len(img.Pix) != 3*n {
			return nil, fmt.Errorf("frame %d holds %d bytes, want %d for %d×%d RGB", t+1, len(img.Pix), 3*n, img.W, img.H)
		}
		for p := 0; p < n; p++ {
			for c := 0; c < 3; c++ {
				out[(t*3+c)*n+p] = float32(float64(img.Pix[3*p+c])/255*2 - 1)
			}
		}
	}
	return out, nil
}

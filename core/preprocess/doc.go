// Package preprocess turns image files into the pixel tensor that Hugging Face's
// PerceiverImageProcessor produces, bit for bit where the arithmetic allows it.
//
// The chain is the processor's: decode and convert like Pillow's
// Image.convert("RGB") → centre crop → Pillow's resampling filter (bicubic for the
// hub checkpoint) → rescale (×1/255 in float64, stored float32) → normalise
// ((x−mean)/std in float32).
//
// Conventions:
//   - RGB images are packed uint8, row-major, [H, W, 3]; no stride, no alpha.
//   - Pixels of a Result are float32, channel-major [3, H, W] (PyTorch's CHW
//     without the batch axis).
//   - Crop boxes are [top, left, height, width] in source pixels; top or left is
//     negative when the crop is larger than the image and HF pads with zeros.
//
// Exactness: the resampler is a port of Pillow's Resample.c (double-precision
// coefficients normalised to sum 1, converted to 22-bit fixed point, horizontal
// pass then vertical, each rounded and clamped to uint8), so for the same input
// pixels the resized image equals Pillow's. Decoding matches Pillow exactly for
// PNG (8 and 16 bit), GIF, BMP, TIFF and WebP (lossless, and lossy through
// libwebp's chroma upsampling and BT.601 tables, redone here). JPEG goes
// through Go's IDCT but libjpeg-turbo's chroma upsampling and YCbCr→RGB tables,
// so a few per cent of the bytes differ by 1-3 (mean |Δ| about 0.03; the tests
// measure it). 1-bit CCITT Group 3/4 TIFFs stored BlackIsZero, which the Go
// decoder inverts, are flipped back. Valid images in variants the decoders do not
// read (CMYK or grey+alpha TIFF, CCITT Group 3 2-D, animated WebP, 12-bit JPEG, …)
// are refused with ErrUnsupported, naming the variant and what is supported.
//
// Orientation follows Pillow per format: a TIFF's Orientation tag is applied
// always, because Pillow applies it when it loads the file (so Hugging Face sees
// the rotated image); for JPEG, PNG and WebP the EXIF orientation is ignored by
// default because Hugging Face ignores it; set Options.ApplyEXIFOrientation to
// honour it (a TIFF is still rotated once). Dimensions are read from the header
// and images over Options.MaxPixels (default DefaultMaxPixels) are refused before
// any pixel is decoded.
//
// FlowFrames prepares the optical flow model's input instead: two frames, each value x/255·2 − 1,
// with no crop, resize or mean/std normalisation.
//
// Errors name the file: I/O errors wrap the os error, bad images wrap
// ErrInvalidImage, valid but unsupported ones ErrUnsupported, oversize images wrap ErrTooLarge, so a batch command can
// report the path and reason, skip the file and go on (see Skips).
package preprocess

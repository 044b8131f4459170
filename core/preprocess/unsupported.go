package preprocess

import (
	"encoding/binary"
	"errors"
	"fmt"
	"image/jpeg"
	"image/png"
	"strings"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
)

// supportedImages is what the decoders read, for messages about what they do not.
const supportedImages = "supported: PNG, JPEG (8-bit, baseline or progressive), GIF (first frame), BMP, " +
	"TIFF (grey, palette, RGB or RGBA; uncompressed, LZW, Deflate, PackBits, CCITT Group 3 1-D or Group 4) and still WebP"

// unsupportedError reports a valid image in a variant we cannot decode: one line naming the
// file, the format, the variant and what is supported, wrapping ErrUnsupported.
func unsupportedError(name, format, variant string) error {
	return fmt.Errorf("%s: unsupported %s image (%s); %s: %w", name, formatName(format), variant, supportedImages, ErrUnsupported)
}

// unsupportedVariant tells a decoder's "valid but not implemented" error apart from a corrupt
// file, and says what the variant is; "" means the error is not of that kind.
func unsupportedVariant(err error, format string, data []byte) string {
	var (
		tiffErr tiff.UnsupportedError
		pngErr  png.UnsupportedError
		jpegErr jpeg.UnsupportedError
	)
	switch {
	case errors.As(err, &tiffErr):
		what := strings.TrimPrefix(tiffErr.Error(), "tiff: unsupported feature: ")
		if d := tiffDescription(data); d != "" {
			what += "; " + d
		}
		return what
	case errors.As(err, &pngErr):
		if strings.Contains(string(pngErr), "overflow") {
			return "" // a hostile size, not a feature
		}
		return strings.TrimPrefix(pngErr.Error(), "png: unsupported feature: ")
	case errors.As(err, &jpegErr):
		return strings.TrimPrefix(jpegErr.Error(), "unsupported JPEG feature: ")
	case errors.Is(err, bmp.ErrUnsupported):
		return "a BMP variant (compression or bit depth) the decoder does not read"
	}
	return ""
}

// unsupportedBefore names a variant that the decoders would misread or call corrupt, found in
// the header before decoding, or "".
func unsupportedBefore(data []byte, format string) string {
	switch format {
	case "tiff":
		return tiffUnsupported(data)
	case "webp":
		if webpAnimated(data) {
			return "animated WebP"
		}
	}
	return ""
}

// webpAnimated reports the animation flag of a WebP file's VP8X header.
func webpAnimated(d []byte) bool {
	// "RIFF" size "WEBP" "VP8X" chunk-size flags...
	if len(d) < 21 || string(d[12:16]) != "VP8X" || binary.LittleEndian.Uint32(d[16:]) < 10 {
		return false
	}
	return d[20]&0x02 != 0
}

// formatName spells a registered format name as people write it.
func formatName(format string) string {
	if format == "webp" {
		return "WebP"
	}
	return strings.ToUpper(format)
}

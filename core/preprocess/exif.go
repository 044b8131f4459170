package preprocess

import (
	"bytes"
	"encoding/binary"
)

// exifOrientation returns the EXIF Orientation tag (1..8) of an encoded image,
// or 0 when there is none or it cannot be read. It looks where Pillow's
// getexif() looks: the JPEG APP1 "Exif" segment, the PNG eXIf chunk, the WebP
// EXIF chunk, and a TIFF file's own first IFD.
func exifOrientation(data []byte, format string) int {
	switch format {
	case "jpeg":
		return tiffOrientation(jpegExif(data))
	case "png":
		return tiffOrientation(pngExif(data))
	case "webp":
		return tiffOrientation(webpExif(data))
	case "tiff":
		return tiffOrientation(data)
	}
	return 0
}

func jpegExif(d []byte) []byte {
	i := 2 // after SOI
	for i+4 <= len(d) {
		if d[i] != 0xFF {
			return nil
		}
		marker := d[i+1]
		if marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7) || marker == 0x01 || marker == 0xFF {
			i++
			continue
		}
		if marker == 0xDA || marker == 0xD9 { // image data starts: no more metadata
			return nil
		}
		n := int(binary.BigEndian.Uint16(d[i+2:]))
		if n < 2 || i+2+n > len(d) {
			return nil
		}
		seg := d[i+4 : i+2+n]
		if marker == 0xE1 && bytes.HasPrefix(seg, []byte("Exif\x00\x00")) {
			return seg[6:]
		}
		i += 2 + n
	}
	return nil
}

func pngExif(d []byte) []byte {
	i := 8
	for i+12 <= len(d) {
		n := int(binary.BigEndian.Uint32(d[i:]))
		typ := string(d[i+4 : i+8])
		if n < 0 || i+12+n > len(d) {
			return nil
		}
		if typ == "eXIf" {
			return d[i+8 : i+8+n]
		}
		if typ == "IDAT" || typ == "IEND" {
			return nil
		}
		i += 12 + n
	}
	return nil
}

func webpExif(d []byte) []byte {
	i := 12 // "RIFF" size "WEBP"
	for i+8 <= len(d) {
		n := int(binary.LittleEndian.Uint32(d[i+4:]))
		if n < 0 || i+8+n > len(d) {
			return nil
		}
		if string(d[i:i+4]) == "EXIF" {
			seg := d[i+8 : i+8+n]
			return bytes.TrimPrefix(seg, []byte("Exif\x00\x00"))
		}
		i += 8 + n + n%2
	}
	return nil
}

// orient applies an EXIF orientation as Pillow's ImageOps.exif_transpose does
// (2 mirror, 3 rotate 180°, 4 flip, 5 transpose, 6 rotate 90° clockwise,
// 7 transverse, 8 rotate 90° counter-clockwise).
func orient(src *RGB, o int) *RGB {
	w, h := src.W, src.H
	ow, oh := w, h
	if o >= 5 {
		ow, oh = h, w
	}
	dst := NewRGB(ow, oh)
	for oy := 0; oy < oh; oy++ {
		for ox := 0; ox < ow; ox++ {
			var sx, sy int
			switch o {
			case 2:
				sx, sy = w-1-ox, oy
			case 3:
				sx, sy = w-1-ox, h-1-oy
			case 4:
				sx, sy = ox, h-1-oy
			case 5:
				sx, sy = oy, ox
			case 6:
				sx, sy = oy, h-1-ox
			case 7:
				sx, sy = w-1-oy, h-1-ox
			case 8:
				sx, sy = w-1-oy, ox
			default:
				sx, sy = ox, oy
			}
			copy(dst.Pix[(oy*ow+ox)*3:(oy*ow+ox)*3+3], src.Pix[(sy*w+sx)*3:(sy*w+sx)*3+3])
		}
	}
	return dst
}

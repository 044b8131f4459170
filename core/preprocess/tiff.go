package preprocess

import (
	"encoding/binary"
	"strconv"
)

// TIFF tags read from the first IFD, where the Go decoder hides what Pillow acts on.
const (
	tagCompression     = 259
	tagPhotometric     = 262
	tagOrientation     = 0x0112
	tagSamplesPerPixel = 277
	tagT4Options       = 292
)

// TIFF compression and PhotometricInterpretation values used below.
const (
	compressionCCITTRLE = 2
	compressionCCITTG3  = 3
	compressionCCITTG4  = 4
	photometricBlack0   = 1 // BlackIsZero
)

var photometricNames = map[int]string{0: "WhiteIsZero", 1: "BlackIsZero", 2: "RGB", 3: "palette",
	4: "transparency mask", 5: "CMYK", 6: "YCbCr", 8: "CIELab"}

// tiffTag returns the first value of a SHORT or LONG tag in the first IFD of TIFF-structured
// data t, and whether it was found. Values stored out of line are followed.
func tiffTag(t []byte, tag uint16) (int, bool) {
	if len(t) < 8 {
		return 0, false
	}
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 0, false
	}
	off := int64(bo.Uint32(t[4:]))
	if off < 8 || off+2 > int64(len(t)) {
		return 0, false
	}
	n := int64(bo.Uint16(t[off:]))
	for e := int64(0); e < n; e++ {
		p := off + 2 + 12*e
		if p+12 > int64(len(t)) {
			return 0, false
		}
		if bo.Uint16(t[p:]) != tag {
			continue
		}
		typ, count := bo.Uint16(t[p+2:]), int64(bo.Uint32(t[p+4:]))
		var size int64
		switch typ {
		case 3: // SHORT
			size = 2
		case 4: // LONG
			size = 4
		default:
			return 0, false
		}
		if count < 1 {
			return 0, false
		}
		at := p + 8
		if count*size > 4 {
			at = int64(bo.Uint32(t[p+8:]))
			if at < 0 || at+size > int64(len(t)) {
				return 0, false
			}
		}
		if size == 2 {
			return int(bo.Uint16(t[at:])), true
		}
		return int(bo.Uint32(t[at:])), true
	}
	return 0, false
}

// tiffOrientation reads the Orientation tag (1..8) from the first IFD of TIFF-structured data,
// or returns 0.
func tiffOrientation(t []byte) int {
	if v, ok := tiffTag(t, tagOrientation); ok && v >= 1 && v <= 8 {
		return v
	}
	return 0
}

// tiffFaxInverted reports a CCITT-compressed TIFF stored BlackIsZero: the Go decoder inverts
// those (it is right for the WhiteIsZero files fax machines write), so the decoded image is
// flipped back here to what libtiff and Pillow give.
func tiffFaxInverted(data []byte) bool {
	c, _ := tiffTag(data, tagCompression)
	p, _ := tiffTag(data, tagPhotometric)
	return (c == compressionCCITTRLE || c == compressionCCITTG3 || c == compressionCCITTG4) && p == photometricBlack0
}

// tiffUnsupported names a TIFF variant the Go decoder misreads rather than refuses, or "".
func tiffUnsupported(data []byte) string {
	c, _ := tiffTag(data, tagCompression)
	if t4, _ := tiffTag(data, tagT4Options); c == compressionCCITTG3 && t4&1 != 0 {
		return "CCITT Group 3 with 2-D coding"
	}
	return ""
}

// tiffDescription says what a TIFF holds, for messages: "photometric CMYK, 4 samples per pixel".
func tiffDescription(data []byte) string {
	p, okP := tiffTag(data, tagPhotometric)
	spp, okS := tiffTag(data, tagSamplesPerPixel)
	s := ""
	if okP {
		name, ok := photometricNames[p]
		if !ok {
			name = "code " + strconv.Itoa(p)
		}
		s = "photometric " + name
	}
	if okS {
		if s != "" {
			s += ", "
		}
		s += strconv.Itoa(spp) + " samples per pixel"
	}
	return s
}

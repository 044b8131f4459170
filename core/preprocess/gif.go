package preprocess

import "image"

// Go's image/gif zeroes the palette entry of the transparent index and returns
// only the first frame's rectangle. Pillow keeps the stored colour of that entry
// and opens the first frame on a canvas of the logical screen size, filled with
// the transparent index (or 0). gifFirstFrame reads what is needed for that
// from the file itself.

type gifFrameInfo struct {
	palette     [][3]uint8 // colour table in force for the first frame
	transparent int        // transparent index of the first frame, or -1
	ok          bool
}

func gifColorTable(d []byte, i, flags int) ([][3]uint8, int, bool) {
	if flags&0x80 == 0 {
		return nil, i, true
	}
	n := 2 << (flags & 7)
	if i+3*n > len(d) {
		return nil, i, false
	}
	t := make([][3]uint8, n)
	for k := range t {
		t[k] = [3]uint8{d[i+3*k], d[i+3*k+1], d[i+3*k+2]}
	}
	return t, i + 3*n, true
}

func gifFirstFrame(d []byte) gifFrameInfo {
	if len(d) < 13 {
		return gifFrameInfo{}
	}
	global, i, ok := gifColorTable(d, 13, int(d[10]))
	if !ok {
		return gifFrameInfo{}
	}
	info := gifFrameInfo{palette: global, transparent: -1}
	for i < len(d) {
		switch d[i] {
		case 0x21: // extension: label, then sub-blocks
			if i+2 > len(d) {
				return gifFrameInfo{}
			}
			label := d[i+1]
			j := i + 2
			if label == 0xF9 && j+5 <= len(d) && d[j] >= 4 { // graphic control
				if d[j+1]&1 != 0 {
					info.transparent = int(d[j+4])
				}
			}
			for j < len(d) && d[j] != 0 {
				j += int(d[j]) + 1
			}
			i = j + 1
		case 0x2C: // image descriptor
			if i+10 > len(d) {
				return gifFrameInfo{}
			}
			local, _, ok := gifColorTable(d, i+10, int(d[i+9]))
			if !ok {
				return gifFrameInfo{}
			}
			if local != nil {
				info.palette = local
			}
			info.ok = true
			return info
		default:
			return gifFrameInfo{}
		}
	}
	return gifFrameInfo{}
}

// gifToPillow rebuilds Pillow's first-frame "P" image from Go's decoded frame.
func gifToPillow(m *image.Paletted, d []byte, screenW, screenH int) *RGB {
	info := gifFirstFrame(d)
	if !info.ok {
		return nil
	}
	var lut [256][3]uint8
	copy(lut[:], info.palette)
	fill := 0
	if info.transparent >= 0 {
		fill = info.transparent
	}
	out := NewRGB(screenW, screenH)
	fc := lut[fill]
	for i := 0; i < len(out.Pix); i += 3 {
		out.Pix[i], out.Pix[i+1], out.Pix[i+2] = fc[0], fc[1], fc[2]
	}
	r := m.Rect.Intersect(image.Rect(0, 0, screenW, screenH))
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			c := lut[m.Pix[m.PixOffset(x, y)]]
			o := (y*screenW + x) * 3
			out.Pix[o], out.Pix[o+1], out.Pix[o+2] = c[0], c[1], c[2]
		}
	}
	return out
}

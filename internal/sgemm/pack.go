package sgemm

// packPanels copies rows [r0, r0+rn) × columns [p0, p0+kc) of a matrix X into
// dst as panels of w rows: panel q holds rows r0+q·w … r0+q·w+w-1, stored
// column after column (w values per column), so panel q starts at dst[q·w·kc].
// A short last panel is padded with zeros to w rows.
//
// X(i, p) is x[i·ld+p] when kContiguous and x[p·ld+i] otherwise; op(A) is
// packed with i = row of C, op(B) with i = column of C.
func packPanels(dst, x []float32, ld int, kContiguous bool, r0, rn, p0, kc, w int) {
	if !kContiguous {
		packRuns(dst, x, ld, r0, rn, p0, kc, w)
		return
	}
	for q := 0; q < rn; q += w {
		rows := min(w, rn-q)
		d := dst[q*kc : q*kc+w*kc]
		i := 0
		if rows >= 8 && transposeRows8(d, w, x, ld, r0+q, p0, kc) {
			// Groups of 8 rows; a last partial group is moved back to end at
			// row rows-1, rewriting a few rows with the same values.
			for i = 8; i < rows; i += 8 {
				transposeRows8(d[min(i, rows-8):], w, x, ld, r0+q+min(i, rows-8), p0, kc)
			}
			i = rows
		}
		// Portable path: read four rows of X sequentially, write 16-byte runs.
		for ; i+4 <= rows; i += 4 {
			s0 := x[(r0+q+i)*ld+p0:][:kc]
			s1 := x[(r0+q+i+1)*ld+p0:][:kc]
			s2 := x[(r0+q+i+2)*ld+p0:][:kc]
			s3 := x[(r0+q+i+3)*ld+p0:][:kc]
			for p := range s0 {
				o := d[p*w+i:][:4]
				o[0], o[1], o[2], o[3] = s0[p], s1[p], s2[p], s3[p]
			}
		}
		for ; i < rows; i++ {
			s := x[(r0+q+i)*ld+p0:][:kc]
			for p, v := range s {
				d[p*w+i] = v
			}
		}
		if rows < w {
			for p := 0; p < kc; p++ {
				clear(d[p*w+rows : p*w+w])
			}
		}
	}
}

// packRuns is packPanels when rows of X run along the panels (X(i, p) =
// x[p·ld+i]): each row of X is read once and cut into w-float runs, one per
// panel. Runs are short, so whole fixed-size arrays are copied, which the
// compiler moves inline instead of calling memmove per run.
func packRuns(dst, x []float32, ld, r0, rn, p0, kc, w int) {
	full := rn / w * w
	for p := 0; p < kc; p++ {
		src := x[(p0+p)*ld+r0:][:rn]
		q := 0
		switch w {
		case 32:
			for ; q < full; q += 32 {
				*(*[32]float32)(dst[q*kc+p*32:]) = *(*[32]float32)(src[q:])
			}
		case 16:
			for ; q < full; q += 16 {
				*(*[16]float32)(dst[q*kc+p*16:]) = *(*[16]float32)(src[q:])
			}
		case 14:
			for ; q < full; q += 14 {
				d := dst[q*kc+p*14:]
				*(*[8]float32)(d) = *(*[8]float32)(src[q:])
				*(*[4]float32)(d[8:]) = *(*[4]float32)(src[q+8:])
				*(*[2]float32)(d[12:]) = *(*[2]float32)(src[q+12:])
			}
		}
		for ; q < rn; q += w {
			rows := min(w, rn-q)
			d := dst[q*kc+p*w:][:w]
			for i := range rows {
				d[i] = src[q+i]
			}
			clear(d[rows:])
		}
	}
}

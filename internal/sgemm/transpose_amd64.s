//go:build amd64 && !purego

#include "textflag.h"

// func transpose8x8(dst *float32, ldd int, src *float32, lds int, blocks int)
// For b < blocks, i, j < 8: dst[(8b+j)·ldd + i] = src[i·lds + 8b + j].
// Strides are in elements. Uses AVX only (unpack, shuffle, 128-bit permute).
TEXT ·transpose8x8(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ ldd+8(FP), DX
	MOVQ src+16(FP), SI
	MOVQ lds+24(FP), R8
	MOVQ blocks+32(FP), CX
	SHLQ $2, DX
	SHLQ $2, R8
	LEAQ (R8)(R8*2), R9     // 3·lds bytes
	LEAQ (SI)(R8*4), R10    // source row 4
	LEAQ (DX)(DX*2), R11    // 3·ldd bytes
	LEAQ (DI)(DX*4), R12    // destination row 4
	MOVQ DX, R13
	SHLQ $3, R13            // 8·ldd bytes
	TESTQ CX, CX
	JZ done

loop:
	VMOVUPS (SI), Y0
	VMOVUPS (SI)(R8*1), Y1
	VMOVUPS (SI)(R8*2), Y2
	VMOVUPS (SI)(R9*1), Y3
	VMOVUPS (R10), Y4
	VMOVUPS (R10)(R8*1), Y5
	VMOVUPS (R10)(R8*2), Y6
	VMOVUPS (R10)(R9*1), Y7

	// Interleave row pairs: Y8 = a0 b0 a1 b1 | a4 b4 a5 b5, Y9 = a2 b2 a3 b3 | a6 b6 a7 b7, …
	VUNPCKLPS Y1, Y0, Y8
	VUNPCKHPS Y1, Y0, Y9
	VUNPCKLPS Y3, Y2, Y10
	VUNPCKHPS Y3, Y2, Y11
	VUNPCKLPS Y5, Y4, Y12
	VUNPCKHPS Y5, Y4, Y13
	VUNPCKLPS Y7, Y6, Y14
	VUNPCKHPS Y7, Y6, Y15

	// Gather four rows per column within each 128-bit lane: Y0 = a0 b0 c0 d0 | a4 b4 c4 d4, …
	VSHUFPS $0x44, Y10, Y8, Y0
	VSHUFPS $0xEE, Y10, Y8, Y1
	VSHUFPS $0x44, Y11, Y9, Y2
	VSHUFPS $0xEE, Y11, Y9, Y3
	VSHUFPS $0x44, Y14, Y12, Y4
	VSHUFPS $0xEE, Y14, Y12, Y5
	VSHUFPS $0x44, Y15, Y13, Y6
	VSHUFPS $0xEE, Y15, Y13, Y7

	// Join the lanes: column j = rows a…d of lane j/4 followed by rows e…h.
	VPERM2F128 $0x20, Y4, Y0, Y8
	VPERM2F128 $0x20, Y5, Y1, Y9
	VPERM2F128 $0x20, Y6, Y2, Y10
	VPERM2F128 $0x20, Y7, Y3, Y11
	VPERM2F128 $0x31, Y4, Y0, Y12
	VPERM2F128 $0x31, Y5, Y1, Y13
	VPERM2F128 $0x31, Y6, Y2, Y14
	VPERM2F128 $0x31, Y7, Y3, Y15

	VMOVUPS Y8, (DI)
	VMOVUPS Y9, (DI)(DX*1)
	VMOVUPS Y10, (DI)(DX*2)
	VMOVUPS Y11, (DI)(R11*1)
	VMOVUPS Y12, (R12)
	VMOVUPS Y13, (R12)(DX*1)
	VMOVUPS Y14, (R12)(DX*2)
	VMOVUPS Y15, (R12)(R11*1)

	ADDQ $32, SI
	ADDQ $32, R10
	ADDQ R13, DI
	ADDQ R13, R12
	DECQ CX
	JNZ loop

done:
	VZEROUPPER
	RET

//go:build amd64 && !purego

#include "textflag.h"

// func cvtBF16AVX512(dst *uint16, src *float32, n int)
// dst[i] = bfloat16(src[i]) for i < n, n a multiple of 16: VCVTNEPS2BF16 (round to nearest
// even, subnormal inputs as zero), which Go's assembler does not know, emitted as its EVEX
// bytes (EVEX.512.F3.0F38.W0 72 /r, ymm1 ← zmm0).
TEXT ·cvtBF16AVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $4, CX
	JZ   done

loop:
	VMOVUPS (SI), Z0
	BYTE $0x62; BYTE $0xf2; BYTE $0x7e; BYTE $0x48; BYTE $0x72; BYTE $0xc8 // VCVTNEPS2BF16 Z0, Y1
	VMOVDQU Y1, (DI)
	ADDQ    $64, SI
	ADDQ    $32, DI
	DECQ    CX
	JNZ     loop

done:
	VZEROUPPER
	RET

//go:build amd64 && !purego

#include "textflag.h"

// Offsets into ·vconst (32 bytes per constant); see impl_amd64.go.
#define C_LO 0
#define C_HI 32
#define C_LOG2E 64
#define C_LN2HI 96
#define C_LN2LO 128
#define C_P5 160
#define C_P4 192
#define C_P3 224
#define C_P2 256
#define C_P1 288
#define C_P0 320
#define C_ONE 352
#define C_HALF 384
#define C_NEGHALF 416
#define C_SQRTHALF 448
#define C_SPLIT 480
#define C_CLAMP 512
#define C_NEGCLAMP 544
#define C_ABS 576
#define C_A0 608
#define C_A1 640
#define C_A2 672
#define C_A3 704
#define C_A4 736
#define C_F0 768
#define C_F1 800
#define C_F2 832
#define C_F3 864
#define C_F4 896
#define C_F5 928
#define C_F6 960
#define C_F7 992
#define C_F8 1024
#define C_F9 1056
#define C_F10 1088
#define C_BIAS 1120

// Z16–Z27 hold the constants of the exponential in the AVX-512 kernels that use it.
#define LOADEXP512 \
	VBROADCASTSS ·vconst+C_LO(SB), Z16 \
	VBROADCASTSS ·vconst+C_HI(SB), Z17 \
	VBROADCASTSS ·vconst+C_LOG2E(SB), Z18 \
	VBROADCASTSS ·vconst+C_LN2HI(SB), Z19 \
	VBROADCASTSS ·vconst+C_LN2LO(SB), Z20 \
	VBROADCASTSS ·vconst+C_P5(SB), Z21 \
	VBROADCASTSS ·vconst+C_P4(SB), Z22 \
	VBROADCASTSS ·vconst+C_P3(SB), Z23 \
	VBROADCASTSS ·vconst+C_P2(SB), Z24 \
	VBROADCASTSS ·vconst+C_P1(SB), Z25 \
	VBROADCASTSS ·vconst+C_P0(SB), Z26 \
	VBROADCASTSS ·vconst+C_ONE(SB), Z27

// EXPREDUCE512 then EXPPOLY512 split e^X into Y·2^N (N integral, as floats), as expParts does;
// X is clobbered (it ends as the reduced argument r, to which expParts' δ may be added between
// the two), T is scratch. The clamps keep a NaN in X (the second source of VMAXPS and VMINPS).
#define EXPREDUCE512(X, N) \
	VMAXPS X, Z16, X \
	VMINPS X, Z17, X \
	VMULPS Z18, X, N \
	VRNDSCALEPS $0, N, N \
	VFNMADD231PS Z19, N, X \
	VFNMADD231PS Z20, N, X

#define EXPPOLY512(X, Y, T) \
	VMOVAPS Z21, Y \
	VFMADD213PS Z22, X, Y \
	VFMADD213PS Z23, X, Y \
	VFMADD213PS Z24, X, Y \
	VFMADD213PS Z25, X, Y \
	VFMADD213PS Z26, X, Y \
	VMULPS X, X, T \
	VFMADD213PS X, T, Y \
	VADDPS Z27, Y, Y

// func expShiftSumAVX512(dst, src *float32, n int, shift float32, acc *[8]float64)
// n is a positive multiple of 16.
TEXT ·expShiftSumAVX512(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS shift+24(FP), Z15
	MOVQ acc+32(FP), DX
	LOADEXP512
	VPXORQ Z13, Z13, Z13
	VPXORQ Z14, Z14, Z14

expLoop:
	VMOVUPS (SI), Z0
	VSUBPS Z15, Z0, Z0
	EXPREDUCE512(Z0, Z1)
	EXPPOLY512(Z0, Z2, Z3)
	VSCALEFPS Z1, Z2, Z0
	VMOVUPS Z0, (DI)
	VCVTPS2PD Y0, Z4
	VEXTRACTF64X4 $1, Z0, Y5
	VCVTPS2PD Y5, Z5
	VADDPD Z4, Z13, Z13
	VADDPD Z5, Z14, Z14
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JNZ expLoop

	VADDPD Z14, Z13, Z13
	VADDPD (DX), Z13, Z13
	VMOVUPD Z13, (DX)
	VZEROUPPER
	RET

// func maxAVX512(x *float32, n int, acc *[16]float32)
// Lane-wise m = x > m ? x : m, so NaNs in x are skipped as by the scalar loop.
TEXT ·maxAVX512(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	MOVQ acc+16(FP), DX
	VMOVUPS (DX), Z0

maxLoop:
	VMOVUPS (SI), Z1
	VMAXPS Z0, Z1, Z0
	ADDQ $64, SI
	SUBQ $16, CX
	JNZ maxLoop

	VMOVUPS Z0, (DX)
	VZEROUPPER
	RET

// func scaleAVX512(x *float32, n int, s float32)
TEXT ·scaleAVX512(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSS s+16(FP), Z1

scaleLoop:
	VMULPS (SI), Z1, Z0
	VMOVUPS Z0, (SI)
	ADDQ $64, SI
	SUBQ $16, CX
	JNZ scaleLoop

	VZEROUPPER
	RET

// func geluAVX512(dst, src *float32, n int)
// The steps of gelu32, both branches computed and blended by masks.
TEXT ·geluAVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	LOADEXP512
	VBROADCASTSS ·vconst+C_HALF(SB), Z28
	VBROADCASTSS ·vconst+C_SQRTHALF(SB), Z29
	VBROADCASTSS ·vconst+C_ABS(SB), Z30
	VBROADCASTSS ·vconst+C_CLAMP(SB), Z31
	VBROADCASTSS ·vconst+C_NEGCLAMP(SB), Z14
	VBROADCASTSS ·vconst+C_SPLIT(SB), Z15
	LEAQ ·vconst(SB), R8

geluLoop:
	VMOVUPS (SI), Z0
	VMULPS Z28, Z0, Z1
	// Near zero: h + h·z·A(z²).
	VMULPS Z29, Z0, Z2
	VMULPS Z2, Z2, Z3
	VBROADCASTSS C_A4(R8), Z4
	VFMADD213PS.BCST C_A3(R8), Z3, Z4
	VFMADD213PS.BCST C_A2(R8), Z3, Z4
	VFMADD213PS.BCST C_A1(R8), Z3, Z4
	VFMADD213PS.BCST C_A0(R8), Z3, Z4
	VMULPS Z4, Z2, Z4
	VFMADD213PS Z1, Z1, Z4
	// Elsewhere: ½·erfc(|z|) = 2^k·m with m = ½·F(s)·y, s = 1/(1+t), y·2^k = e^(-hi/2-lo/2).
	VMAXPS Z0, Z14, Z5
	VMINPS Z5, Z31, Z5
	VPANDD Z30, Z5, Z6
	VFMADD213PS Z27, Z29, Z6
	VDIVPS Z6, Z27, Z6
	VBROADCASTSS C_F10(R8), Z7
	VFMADD213PS.BCST C_F9(R8), Z6, Z7
	VFMADD213PS.BCST C_F8(R8), Z6, Z7
	VFMADD213PS.BCST C_F7(R8), Z6, Z7
	VFMADD213PS.BCST C_F6(R8), Z6, Z7
	VFMADD213PS.BCST C_F5(R8), Z6, Z7
	VFMADD213PS.BCST C_F4(R8), Z6, Z7
	VFMADD213PS.BCST C_F3(R8), Z6, Z7
	VFMADD213PS.BCST C_F2(R8), Z6, Z7
	VFMADD213PS.BCST C_F1(R8), Z6, Z7
	VFMADD213PS.BCST C_F0(R8), Z6, Z7
	VMULPS Z5, Z5, Z8
	VMOVAPS Z8, Z9
	VFMSUB231PS Z5, Z5, Z9
	VMULPS.BCST C_NEGHALF(R8), Z8, Z10
	VMULPS.BCST C_NEGHALF(R8), Z9, Z9
	EXPREDUCE512(Z10, Z11)
	VADDPS Z9, Z10, Z10
	EXPPOLY512(Z10, Z12, Z13)
	VMULPS Z28, Z7, Z7
	VMULPS Z12, Z7, Z7
	// x < 0: 2^k·(xc·m) + 0·x (NaN for -Inf, as the formula gives).
	VMULPS Z5, Z7, Z8
	VSCALEFPS Z11, Z8, Z8
	VPXORD Z13, Z13, Z13
	VMULPS Z13, Z0, Z9
	VADDPS Z9, Z8, Z8
	// x ≥ 0 or NaN: x·(1 - 2^k·m).
	VSCALEFPS Z11, Z7, Z7
	VSUBPS Z7, Z27, Z7
	VMULPS Z0, Z7, Z7
	VCMPPS $1, Z13, Z0, K1
	VMOVAPS Z8, K1, Z7
	VPANDD Z30, Z0, Z9
	VCMPPS $1, Z15, Z9, K2
	VMOVAPS Z4, K2, Z7
	VMOVUPS Z7, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JNZ geluLoop

	VZEROUPPER
	RET

// func sumAVX512(x *float32, n int, acc *[8]float64)
TEXT ·sumAVX512(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	MOVQ acc+16(FP), DX
	VMOVUPD (DX), Z3
	VPXORQ Z4, Z4, Z4

sumLoop:
	VCVTPS2PD (SI), Z1
	VCVTPS2PD 32(SI), Z2
	VADDPD Z1, Z3, Z3
	VADDPD Z2, Z4, Z4
	ADDQ $64, SI
	SUBQ $16, CX
	JNZ sumLoop

	VADDPD Z4, Z3, Z3
	VMOVUPD Z3, (DX)
	VZEROUPPER
	RET

// func sumSqDevAVX512(x *float32, n int, mean float64, acc *[8]float64)
TEXT ·sumSqDevAVX512(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSD mean+16(FP), Z0
	MOVQ acc+24(FP), DX
	VMOVUPD (DX), Z3
	VPXORQ Z4, Z4, Z4

sqLoop:
	VCVTPS2PD (SI), Z1
	VCVTPS2PD 32(SI), Z2
	VSUBPD Z0, Z1, Z1
	VSUBPD Z0, Z2, Z2
	VFMADD231PD Z1, Z1, Z3
	VFMADD231PD Z2, Z2, Z4
	ADDQ $64, SI
	SUBQ $16, CX
	JNZ sqLoop

	VADDPD Z4, Z3, Z3
	VMOVUPD Z3, (DX)
	VZEROUPPER
	RET

// func normalizeAVX512(dst, src, w, b *float32, n int, mean, inv float64)
// dst = float32((src-mean)·inv)·w + b, eight values at a time in float64.
TEXT ·normalizeAVX512(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ w+16(FP), BX
	MOVQ b+24(FP), DX
	MOVQ n+32(FP), CX
	VBROADCASTSD mean+40(FP), Z0
	VBROADCASTSD inv+48(FP), Z15

normLoop:
	VCVTPS2PD (SI), Z1
	VCVTPS2PD 32(SI), Z2
	VSUBPD Z0, Z1, Z1
	VSUBPD Z0, Z2, Z2
	VMULPD Z15, Z1, Z1
	VMULPD Z15, Z2, Z2
	VCVTPD2PS Z1, Y1
	VCVTPD2PS Z2, Y2
	VINSERTF64X4 $1, Y2, Z1, Z1
	VMOVUPS (BX), Z3
	VFMADD213PS (DX), Z3, Z1
	VMOVUPS Z1, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	ADDQ $64, BX
	ADDQ $64, DX
	SUBQ $16, CX
	JNZ normLoop

	VZEROUPPER
	RET

// AVX2 + FMA kernels, eight lanes. With sixteen registers, most constants are memory operands;
// the clamps stay in registers because their NaN handling needs the value as second source.

// EXPREDUCE256 and EXPPOLY256 are the 512-bit macros with Y14 = -105 and Y13 = 89 preloaded.
#define EXPREDUCE256(X, N) \
	VMAXPS X, Y14, X \
	VMINPS X, Y13, X \
	VMULPS ·vconst+C_LOG2E(SB), X, N \
	VROUNDPS $0, N, N \
	VFNMADD231PS ·vconst+C_LN2HI(SB), N, X \
	VFNMADD231PS ·vconst+C_LN2LO(SB), N, X

#define EXPPOLY256(X, Y, T) \
	VMOVUPS ·vconst+C_P5(SB), Y \
	VFMADD213PS ·vconst+C_P4(SB), X, Y \
	VFMADD213PS ·vconst+C_P3(SB), X, Y \
	VFMADD213PS ·vconst+C_P2(SB), X, Y \
	VFMADD213PS ·vconst+C_P1(SB), X, Y \
	VFMADD213PS ·vconst+C_P0(SB), X, Y \
	VMULPS X, X, T \
	VFMADD213PS X, T, Y \
	VADDPS ·vconst+C_ONE(SB), Y, Y

// POW2HALVES256 turns the integral floats in N into 2^(k-k>>1) in N and 2^(k>>1) in T.
#define POW2HALVES256(N, T) \
	VCVTPS2DQ N, N \
	VPSRAD $1, N, T \
	VPSUBD T, N, N \
	VPADDD ·vconst+C_BIAS(SB), T, T \
	VPSLLD $23, T, T \
	VPADDD ·vconst+C_BIAS(SB), N, N \
	VPSLLD $23, N, N

#define LOADCLAMPS256 \
	VBROADCASTSS ·vconst+C_LO(SB), Y14 \
	VBROADCASTSS ·vconst+C_HI(SB), Y13

// func expShiftSumAVX2(dst, src *float32, n int, shift float32, acc *[8]float64)
TEXT ·expShiftSumAVX2(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS shift+24(FP), Y15
	MOVQ acc+32(FP), DX
	LOADCLAMPS256
	VXORPD Y10, Y10, Y10
	VXORPD Y11, Y11, Y11

expLoop2:
	VMOVUPS (SI), Y0
	VSUBPS Y15, Y0, Y0
	EXPREDUCE256(Y0, Y1)
	EXPPOLY256(Y0, Y2, Y3)
	POW2HALVES256(Y1, Y3)
	VMULPS Y3, Y2, Y2
	VMULPS Y1, Y2, Y2
	VMOVUPS Y2, (DI)
	VCVTPS2PD X2, Y4
	VEXTRACTF128 $1, Y2, X5
	VCVTPS2PD X5, Y5
	VADDPD Y4, Y10, Y10
	VADDPD Y5, Y11, Y11
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JNZ expLoop2

	VADDPD (DX), Y10, Y10
	VMOVUPD Y10, (DX)
	VADDPD 32(DX), Y11, Y11
	VMOVUPD Y11, 32(DX)
	VZEROUPPER
	RET

// func maxAVX2(x *float32, n int, acc *[16]float32)
TEXT ·maxAVX2(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	MOVQ acc+16(FP), DX
	VMOVUPS (DX), Y0

maxLoop2:
	VMOVUPS (SI), Y1
	VMAXPS Y0, Y1, Y0
	ADDQ $32, SI
	SUBQ $8, CX
	JNZ maxLoop2

	VMOVUPS Y0, (DX)
	VZEROUPPER
	RET

// func scaleAVX2(x *float32, n int, s float32)
TEXT ·scaleAVX2(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSS s+16(FP), Y1

scaleLoop2:
	VMULPS (SI), Y1, Y0
	VMOVUPS Y0, (SI)
	ADDQ $32, SI
	SUBQ $8, CX
	JNZ scaleLoop2

	VZEROUPPER
	RET

// func geluAVX2(dst, src *float32, n int)
TEXT ·geluAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	LOADCLAMPS256
	VBROADCASTSS ·vconst+C_CLAMP(SB), Y11
	VBROADCASTSS ·vconst+C_NEGCLAMP(SB), Y12

geluLoop2:
	VMOVUPS (SI), Y0
	VMULPS ·vconst+C_HALF(SB), Y0, Y1
	// Near zero: h + h·z·A(z²).
	VMULPS ·vconst+C_SQRTHALF(SB), Y0, Y2
	VMULPS Y2, Y2, Y3
	VMOVUPS ·vconst+C_A4(SB), Y4
	VFMADD213PS ·vconst+C_A3(SB), Y3, Y4
	VFMADD213PS ·vconst+C_A2(SB), Y3, Y4
	VFMADD213PS ·vconst+C_A1(SB), Y3, Y4
	VFMADD213PS ·vconst+C_A0(SB), Y3, Y4
	VMULPS Y4, Y2, Y4
	VFMADD213PS Y1, Y1, Y4
	// Elsewhere: ½·erfc(|z|) = 2^k·m with m = ½·F(s)·y, s = 1/(1+t), y·2^k = e^(-hi/2-lo/2).
	VMAXPS Y0, Y12, Y5
	VMINPS Y5, Y11, Y5
	VANDPS ·vconst+C_ABS(SB), Y5, Y6
	VMOVUPS ·vconst+C_ONE(SB), Y7
	VFMADD132PS ·vconst+C_SQRTHALF(SB), Y7, Y6
	VDIVPS Y6, Y7, Y6
	VMOVUPS ·vconst+C_F10(SB), Y7
	VFMADD213PS ·vconst+C_F9(SB), Y6, Y7
	VFMADD213PS ·vconst+C_F8(SB), Y6, Y7
	VFMADD213PS ·vconst+C_F7(SB), Y6, Y7
	VFMADD213PS ·vconst+C_F6(SB), Y6, Y7
	VFMADD213PS ·vconst+C_F5(SB), Y6, Y7
	VFMADD213PS ·vconst+C_F4(SB), Y6, Y7
	VFMADD213PS ·vconst+C_F3(SB), Y6, Y7
	VFMADD213PS ·vconst+C_F2(SB), Y6, Y7
	VFMADD213PS ·vconst+C_F1(SB), Y6, Y7
	VFMADD213PS ·vconst+C_F0(SB), Y6, Y7
	VMULPS Y5, Y5, Y8
	VMOVAPS Y8, Y6
	VFMSUB231PS Y5, Y5, Y6
	VMULPS ·vconst+C_NEGHALF(SB), Y8, Y8
	VMULPS ·vconst+C_NEGHALF(SB), Y6, Y6
	EXPREDUCE256(Y8, Y2)
	VADDPS Y6, Y8, Y8
	EXPPOLY256(Y8, Y3, Y1)
	VMULPS ·vconst+C_HALF(SB), Y7, Y7
	VMULPS Y3, Y7, Y7
	POW2HALVES256(Y2, Y3)
	// x < 0: 2^k·(xc·m) + 0·x.
	VMULPS Y5, Y7, Y8
	VMULPS Y3, Y8, Y8
	VMULPS Y2, Y8, Y8
	VXORPS Y1, Y1, Y1
	VMULPS Y1, Y0, Y6
	VADDPS Y6, Y8, Y8
	// x ≥ 0 or NaN: x·(1 - 2^k·m).
	VMULPS Y3, Y7, Y7
	VMULPS Y2, Y7, Y7
	VMOVUPS ·vconst+C_ONE(SB), Y6
	VSUBPS Y7, Y6, Y7
	VMULPS Y0, Y7, Y7
	VCMPPS $1, Y1, Y0, Y6
	VBLENDVPS Y6, Y8, Y7, Y7
	VANDPS ·vconst+C_ABS(SB), Y0, Y6
	VCMPPS $1, ·vconst+C_SPLIT(SB), Y6, Y6
	VBLENDVPS Y6, Y4, Y7, Y7
	VMOVUPS Y7, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JNZ geluLoop2

	VZEROUPPER
	RET

// func sumAVX2(x *float32, n int, acc *[8]float64)
TEXT ·sumAVX2(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	MOVQ acc+16(FP), DX
	VMOVUPD (DX), Y3
	VMOVUPD 32(DX), Y4

sumLoop2:
	VCVTPS2PD (SI), Y1
	VCVTPS2PD 16(SI), Y2
	VADDPD Y1, Y3, Y3
	VADDPD Y2, Y4, Y4
	ADDQ $32, SI
	SUBQ $8, CX
	JNZ sumLoop2

	VMOVUPD Y3, (DX)
	VMOVUPD Y4, 32(DX)
	VZEROUPPER
	RET

// func sumSqDevAVX2(x *float32, n int, mean float64, acc *[8]float64)
TEXT ·sumSqDevAVX2(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSD mean+16(FP), Y0
	MOVQ acc+24(FP), DX
	VMOVUPD (DX), Y3
	VMOVUPD 32(DX), Y4

sqLoop2:
	VCVTPS2PD (SI), Y1
	VCVTPS2PD 16(SI), Y2
	VSUBPD Y0, Y1, Y1
	VSUBPD Y0, Y2, Y2
	VFMADD231PD Y1, Y1, Y3
	VFMADD231PD Y2, Y2, Y4
	ADDQ $32, SI
	SUBQ $8, CX
	JNZ sqLoop2

	VMOVUPD Y3, (DX)
	VMOVUPD Y4, 32(DX)
	VZEROUPPER
	RET

// func normalizeAVX2(dst, src, w, b *float32, n int, mean, inv float64)
TEXT ·normalizeAVX2(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ w+16(FP), BX
	MOVQ b+24(FP), DX
	MOVQ n+32(FP), CX
	VBROADCASTSD mean+40(FP), Y0
	VBROADCASTSD inv+48(FP), Y15

normLoop2:
	VCVTPS2PD (SI), Y1
	VCVTPS2PD 16(SI), Y2
	VSUBPD Y0, Y1, Y1
	VSUBPD Y0, Y2, Y2
	VMULPD Y15, Y1, Y1
	VMULPD Y15, Y2, Y2
	VCVTPD2PSY Y1, X1
	VCVTPD2PSY Y2, X2
	VINSERTF128 $1, X2, Y1, Y1
	VMOVUPS (BX), Y3
	VFMADD213PS (DX), Y3, Y1
	VMOVUPS Y1, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	ADDQ $32, BX
	ADDQ $32, DX
	SUBQ $8, CX
	JNZ normLoop2

	VZEROUPPER
	RET

// func gridCombineAVX512(dst, s, x0, x1, x2, x3, rowTerm, colTerm *float32, rows, w int, c *[4]float32)
// dst[u·w+v] = s[u·w+v]·(((((colTerm[v] + rowTerm[u]) + c0·x0) + c1·x1) + c2·x2) + c3·x3), the
// products fused into the adds. w is a positive multiple of 16, rows > 0.
TEXT ·gridCombineAVX512(SB), NOSPLIT, $0-88
	MOVQ dst+0(FP), DI
	MOVQ s+8(FP), SI
	MOVQ x0+16(FP), R8
	MOVQ x1+24(FP), R9
	MOVQ x2+32(FP), R10
	MOVQ x3+40(FP), R11
	MOVQ rowTerm+48(FP), R12
	MOVQ colTerm+56(FP), R13
	MOVQ rows+64(FP), DX
	MOVQ c+80(FP), AX
	VBROADCASTSS 0(AX), Z10
	VBROADCASTSS 4(AX), Z11
	VBROADCASTSS 8(AX), Z12
	VBROADCASTSS 12(AX), Z13

combRow:
	VBROADCASTSS (R12), Z14
	MOVQ R13, BX
	MOVQ w+72(FP), CX

combLoop:
	VMOVUPS (BX), Z0
	VADDPS Z14, Z0, Z0
	VFMADD231PS (R8), Z10, Z0
	VFMADD231PS (R9), Z11, Z0
	VFMADD231PS (R10), Z12, Z0
	VFMADD231PS (R11), Z13, Z0
	VMULPS (SI), Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ $64, BX
	ADDQ $64, SI
	ADDQ $64, DI
	ADDQ $64, R8
	ADDQ $64, R9
	ADDQ $64, R10
	ADDQ $64, R11
	SUBQ $16, CX
	JNZ combLoop

	ADDQ $4, R12
	DECQ DX
	JNZ combRow
	VZEROUPPER
	RET

// func gridMarginalsAVX512(e, r, x0, x1, x2, x3 *float32, rows, w int, rowSum, col *float64, lanes *[32]float64)
// With p = e·r: rowSum[u] = Σ_v p, col[v] += p (float64), and lanes[8k:8k+8] receive Σ p·x_k in
// eight float64 lanes. Within a row the sums run in float32 lanes (16 lanes of w/16 terms each),
// then join the float64 accumulators. w is a positive multiple of 16, rows > 0.
TEXT ·gridMarginalsAVX512(SB), NOSPLIT, $0-88
	MOVQ e+0(FP), SI
	MOVQ r+8(FP), DI
	MOVQ x0+16(FP), R8
	MOVQ x1+24(FP), R9
	MOVQ x2+32(FP), R10
	MOVQ x3+40(FP), R11
	MOVQ rows+48(FP), DX
	MOVQ rowSum+64(FP), R12
	MOVQ col+72(FP), R13
	VPXORQ Z24, Z24, Z24 // float64 accumulators of the four sums, two registers each
	VPXORQ Z25, Z25, Z25
	VPXORQ Z26, Z26, Z26
	VPXORQ Z27, Z27, Z27
	VPXORQ Z28, Z28, Z28
	VPXORQ Z29, Z29, Z29
	VPXORQ Z30, Z30, Z30
	VPXORQ Z31, Z31, Z31

margRow:
	MOVQ R13, BX
	MOVQ w+56(FP), CX
	VPXORD Z20, Z20, Z20 // this row's float32 lanes: Σp, Σp·x0 … Σp·x3
	VPXORD Z21, Z21, Z21
	VPXORD Z22, Z22, Z22
	VPXORD Z23, Z23, Z23
	VPXORD Z19, Z19, Z19

margLoop:
	VMOVUPS (SI), Z0
	VMULPS (DI), Z0, Z0
	VADDPS Z0, Z19, Z19
	VFMADD231PS (R8), Z0, Z20
	VFMADD231PS (R9), Z0, Z21
	VFMADD231PS (R10), Z0, Z22
	VFMADD231PS (R11), Z0, Z23
	VCVTPS2PD Y0, Z1
	VEXTRACTF64X4 $1, Z0, Y2
	VCVTPS2PD Y2, Z2
	VADDPD (BX), Z1, Z1
	VADDPD 64(BX), Z2, Z2
	VMOVUPD Z1, (BX)
	VMOVUPD Z2, 64(BX)
	ADDQ $64, SI
	ADDQ $64, DI
	ADDQ $64, R8
	ADDQ $64, R9
	ADDQ $64, R10
	ADDQ $64, R11
	ADDQ $128, BX
	SUBQ $16, CX
	JNZ margLoop

	// Row sum: the 16 lanes in float64, folded to one value.
	VCVTPS2PD Y19, Z1
	VEXTRACTF64X4 $1, Z19, Y2
	VCVTPS2PD Y2, Z2
	VADDPD Z2, Z1, Z1
	VEXTRACTF64X4 $1, Z1, Y2
	VADDPD Y2, Y1, Y1
	VEXTRACTF128 $1, Y1, X2
	VADDPD X2, X1, X1
	VPERMILPD $1, X1, X2
	VADDSD X2, X1, X1
	VMOVSD X1, (R12)
	ADDQ $8, R12
	// The other sums join their float64 accumulators lane by lane.
	VCVTPS2PD Y20, Z1
	VEXTRACTF64X4 $1, Z20, Y2
	VCVTPS2PD Y2, Z2
	VADDPD Z1, Z24, Z24
	VADDPD Z2, Z25, Z25
	VCVTPS2PD Y21, Z1
	VEXTRACTF64X4 $1, Z21, Y2
	VCVTPS2PD Y2, Z2
	VADDPD Z1, Z26, Z26
	VADDPD Z2, Z27, Z27
	VCVTPS2PD Y22, Z1
	VEXTRACTF64X4 $1, Z22, Y2
	VCVTPS2PD Y2, Z2
	VADDPD Z1, Z28, Z28
	VADDPD Z2, Z29, Z29
	VCVTPS2PD Y23, Z1
	VEXTRACTF64X4 $1, Z23, Y2
	VCVTPS2PD Y2, Z2
	VADDPD Z1, Z30, Z30
	VADDPD Z2, Z31, Z31
	DECQ DX
	JNZ margRow

	MOVQ lanes+80(FP), AX
	VADDPD Z25, Z24, Z24
	VADDPD Z27, Z26, Z26
	VADDPD Z29, Z28, Z28
	VADDPD Z31, Z30, Z30
	VMOVUPD Z24, 0(AX)
	VMOVUPD Z26, 64(AX)
	VMOVUPD Z28, 128(AX)
	VMOVUPD Z30, 192(AX)
	VZEROUPPER
	RET

// func gridCombineAVX2(dst, s, x0, x1, x2, x3, rowTerm, colTerm *float32, rows, w int, c *[4]float32)
// gridCombineAVX512 with 8 lanes; w is a positive multiple of 8.
TEXT ·gridCombineAVX2(SB), NOSPLIT, $0-88
	MOVQ dst+0(FP), DI
	MOVQ s+8(FP), SI
	MOVQ x0+16(FP), R8
	MOVQ x1+24(FP), R9
	MOVQ x2+32(FP), R10
	MOVQ x3+40(FP), R11
	MOVQ rowTerm+48(FP), R12
	MOVQ colTerm+56(FP), R13
	MOVQ rows+64(FP), DX
	MOVQ c+80(FP), AX
	VBROADCASTSS 0(AX), Y10
	VBROADCASTSS 4(AX), Y11
	VBROADCASTSS 8(AX), Y12
	VBROADCASTSS 12(AX), Y13

combRow2:
	VBROADCASTSS (R12), Y14
	MOVQ R13, BX
	MOVQ w+72(FP), CX

combLoop2:
	VMOVUPS (BX), Y0
	VADDPS Y14, Y0, Y0
	VFMADD231PS (R8), Y10, Y0
	VFMADD231PS (R9), Y11, Y0
	VFMADD231PS (R10), Y12, Y0
	VFMADD231PS (R11), Y13, Y0
	VMULPS (SI), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, BX
	ADDQ $32, SI
	ADDQ $32, DI
	ADDQ $32, R8
	ADDQ $32, R9
	ADDQ $32, R10
	ADDQ $32, R11
	SUBQ $8, CX
	JNZ combLoop2

	ADDQ $4, R12
	DECQ DX
	JNZ combRow2
	VZEROUPPER
	RET

// func gridMarginalsAVX2(e, r, x0, x1, x2, x3 *float32, rows, w int, rowSum, col *float64, lanes *[32]float64)
// gridMarginalsAVX512 with 8 lanes (float64 accumulators of 4 lanes, two per sum); w is a positive
// multiple of 8. lanes[8k:8k+8] receive Σ p·x_k.
TEXT ·gridMarginalsAVX2(SB), NOSPLIT, $0-88
	MOVQ e+0(FP), SI
	MOVQ r+8(FP), DI
	MOVQ x0+16(FP), R8
	MOVQ x1+24(FP), R9
	MOVQ x2+32(FP), R10
	MOVQ x3+40(FP), R11
	MOVQ rows+48(FP), DX
	MOVQ rowSum+64(FP), R12
	MOVQ col+72(FP), R13
	MOVQ lanes+80(FP), AX
	VXORPD Y0, Y0, Y0
	VMOVUPD Y0, 0(AX) // the float64 accumulators live in lanes (16 ymm would not fit)
	VMOVUPD Y0, 32(AX)
	VMOVUPD Y0, 64(AX)
	VMOVUPD Y0, 96(AX)
	VMOVUPD Y0, 128(AX)
	VMOVUPD Y0, 160(AX)
	VMOVUPD Y0, 192(AX)
	VMOVUPD Y0, 224(AX)

margRow2:
	MOVQ R13, BX
	MOVQ w+56(FP), CX
	VXORPS Y9, Y9, Y9 // this row's float32 lanes: Σp, Σp·x0 … Σp·x3
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	VXORPS Y12, Y12, Y12
	VXORPS Y13, Y13, Y13

margLoop2:
	VMOVUPS (SI), Y0
	VMULPS (DI), Y0, Y0
	VADDPS Y0, Y9, Y9
	VFMADD231PS (R8), Y0, Y10
	VFMADD231PS (R9), Y0, Y11
	VFMADD231PS (R10), Y0, Y12
	VFMADD231PS (R11), Y0, Y13
	VCVTPS2PD X0, Y1
	VEXTRACTF128 $1, Y0, X2
	VCVTPS2PD X2, Y2
	VADDPD (BX), Y1, Y1
	VADDPD 32(BX), Y2, Y2
	VMOVUPD Y1, (BX)
	VMOVUPD Y2, 32(BX)
	ADDQ $32, SI
	ADDQ $32, DI
	ADDQ $32, R8
	ADDQ $32, R9
	ADDQ $32, R10
	ADDQ $32, R11
	ADDQ $64, BX
	SUBQ $8, CX
	JNZ margLoop2

	// Row sum: the 8 lanes in float64, folded to one value.
	VCVTPS2PD X9, Y1
	VEXTRACTF128 $1, Y9, X2
	VCVTPS2PD X2, Y2
	VADDPD Y2, Y1, Y1
	VEXTRACTF128 $1, Y1, X2
	VADDPD X2, X1, X1
	VPERMILPD $1, X1, X2
	VADDSD X2, X1, X1
	VMOVSD X1, (R12)
	ADDQ $8, R12
	// The other sums join their float64 accumulators lane by lane.
	VCVTPS2PD X10, Y1
	VEXTRACTF128 $1, Y10, X2
	VCVTPS2PD X2, Y2
	VADDPD 0(AX), Y1, Y1
	VADDPD 32(AX), Y2, Y2
	VMOVUPD Y1, 0(AX)
	VMOVUPD Y2, 32(AX)
	VCVTPS2PD X11, Y1
	VEXTRACTF128 $1, Y11, X2
	VCVTPS2PD X2, Y2
	VADDPD 64(AX), Y1, Y1
	VADDPD 96(AX), Y2, Y2
	VMOVUPD Y1, 64(AX)
	VMOVUPD Y2, 96(AX)
	VCVTPS2PD X12, Y1
	VEXTRACTF128 $1, Y12, X2
	VCVTPS2PD X2, Y2
	VADDPD 128(AX), Y1, Y1
	VADDPD 160(AX), Y2, Y2
	VMOVUPD Y1, 128(AX)
	VMOVUPD Y2, 160(AX)
	VCVTPS2PD X13, Y1
	VEXTRACTF128 $1, Y13, X2
	VCVTPS2PD X2, Y2
	VADDPD 192(AX), Y1, Y1
	VADDPD 224(AX), Y2, Y2
	VMOVUPD Y1, 192(AX)
	VMOVUPD Y2, 224(AX)
	DECQ DX
	JNZ margRow2
	VZEROUPPER
	RET

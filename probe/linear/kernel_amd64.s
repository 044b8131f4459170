#include "textflag.h"

// func dot4FMA(x0, x1, x2, x3, w *float64, n int, out *[4]float64)
// out[r] = Σ_{j<n} xr[j]·w[j] for n a multiple of 8. Two accumulators per row hide FMA latency.
TEXT ·dot4FMA(SB), NOSPLIT, $0-56
	MOVQ x0+0(FP), AX
	MOVQ x1+8(FP), BX
	MOVQ x2+16(FP), CX
	MOVQ x3+24(FP), DX
	MOVQ w+32(FP), SI
	MOVQ n+40(FP), DI
	MOVQ out+48(FP), R8
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3
	VXORPD Y4, Y4, Y4
	VXORPD Y5, Y5, Y5
	VXORPD Y6, Y6, Y6
	VXORPD Y7, Y7, Y7
	XORQ R9, R9

dotloop:
	CMPQ R9, DI
	JGE  dotdone
	VMOVUPD     (SI)(R9*8), Y8
	VMOVUPD     32(SI)(R9*8), Y9
	VFMADD231PD (AX)(R9*8), Y8, Y0
	VFMADD231PD 32(AX)(R9*8), Y9, Y4
	VFMADD231PD (BX)(R9*8), Y8, Y1
	VFMADD231PD 32(BX)(R9*8), Y9, Y5
	VFMADD231PD (CX)(R9*8), Y8, Y2
	VFMADD231PD 32(CX)(R9*8), Y9, Y6
	VFMADD231PD (DX)(R9*8), Y8, Y3
	VFMADD231PD 32(DX)(R9*8), Y9, Y7
	ADDQ        $8, R9
	JMP         dotloop

dotdone:
	VADDPD       Y4, Y0, Y0
	VADDPD       Y5, Y1, Y1
	VADDPD       Y6, Y2, Y2
	VADDPD       Y7, Y3, Y3
	VEXTRACTF128 $1, Y0, X4
	VADDPD       X4, X0, X0
	VHADDPD      X0, X0, X0
	VMOVSD       X0, 0(R8)
	VEXTRACTF128 $1, Y1, X5
	VADDPD       X5, X1, X1
	VHADDPD      X1, X1, X1
	VMOVSD       X1, 8(R8)
	VEXTRACTF128 $1, Y2, X6
	VADDPD       X6, X2, X2
	VHADDPD      X2, X2, X2
	VMOVSD       X2, 16(R8)
	VEXTRACTF128 $1, Y3, X7
	VADDPD       X7, X3, X3
	VHADDPD      X3, X3, X3
	VMOVSD       X3, 24(R8)
	VZEROUPPER
	RET

// func axpy4FMA(out *float64, a *[4]float64, x0, x1, x2, x3 *float64, n int)
// out[j] += a[0]·x0[j] + a[1]·x1[j] + a[2]·x2[j] + a[3]·x3[j] for n a multiple of 8.
TEXT ·axpy4FMA(SB), NOSPLIT, $0-56
	MOVQ         out+0(FP), DI
	MOVQ         a+8(FP), R8
	MOVQ         x0+16(FP), AX
	MOVQ         x1+24(FP), BX
	MOVQ         x2+32(FP), CX
	MOVQ         x3+40(FP), DX
	MOVQ         n+48(FP), SI
	VBROADCASTSD 0(R8), Y0
	VBROADCASTSD 8(R8), Y1
	VBROADCASTSD 16(R8), Y2
	VBROADCASTSD 24(R8), Y3
	XORQ         R9, R9

axpyloop:
	CMPQ        R9, SI
	JGE         axpydone
	VMOVUPD     (DI)(R9*8), Y4
	VMOVUPD     32(DI)(R9*8), Y5
	VFMADD231PD (AX)(R9*8), Y0, Y4
	VFMADD231PD 32(AX)(R9*8), Y0, Y5
	VFMADD231PD (BX)(R9*8), Y1, Y4
	VFMADD231PD 32(BX)(R9*8), Y1, Y5
	VFMADD231PD (CX)(R9*8), Y2, Y4
	VFMADD231PD 32(CX)(R9*8), Y2, Y5
	VFMADD231PD (DX)(R9*8), Y3, Y4
	VFMADD231PD 32(DX)(R9*8), Y3, Y5
	VMOVUPD     Y4, (DI)(R9*8)
	VMOVUPD     Y5, 32(DI)(R9*8)
	ADDQ        $8, R9
	JMP         axpyloop

axpydone:
	VZEROUPPER
	RET

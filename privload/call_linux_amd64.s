//go:build linux && amd64

#include "textflag.h"
#include "go_asm.h"

// callTramp calls fr.fn with the arguments of *callFrame fr: entered by
// runtime.cgocall on the system stack with the C calling convention, fr
// in DI. The frame is 64 bytes of outgoing stack arguments, the saved fr
// and padding: with the frame pointer the assembler adds, the stack is
// 16-byte aligned at the CALL, as the ABI requires.
GLOBL ·callTrampABI0(SB), NOPTR|RODATA, $8
DATA ·callTrampABI0(SB)/8, $callTramp<>(SB)

TEXT callTramp<>(SB), NOSPLIT, $80
	MOVQ DI, 72(SP)
	MOVQ DI, R11

	// Stack arguments, in order, at 0(SP).
	MOVQ callFrame_nstack(R11), CX
	XORQ AX, AX
stackloop:
	CMPQ AX, CX
	JGE  stackdone
	MOVQ callFrame_stack(R11)(AX*8), R12
	MOVQ R12, 0(SP)(AX*8)
	INCQ AX
	JMP  stackloop
stackdone:

	MOVQ callFrame_floats+0(R11), X0
	MOVQ callFrame_floats+8(R11), X1
	MOVQ callFrame_floats+16(R11), X2
	MOVQ callFrame_floats+24(R11), X3
	MOVQ callFrame_floats+32(R11), X4
	MOVQ callFrame_floats+40(R11), X5
	MOVQ callFrame_floats+48(R11), X6
	MOVQ callFrame_floats+56(R11), X7

	MOVQ callFrame_ints+8(R11), SI
	MOVQ callFrame_ints+16(R11), DX
	MOVQ callFrame_ints+24(R11), CX
	MOVQ callFrame_ints+32(R11), R8
	MOVQ callFrame_ints+40(R11), R9
	MOVQ callFrame_ints+0(R11), DI

	// AL: the number of vector registers used, for variadic callees.
	MOVQ callFrame_nfloat(R11), AX
	MOVQ callFrame_fn(R11), R10
	CALL R10

	MOVQ 72(SP), DI
	MOVQ AX, callFrame_rax(DI)
	MOVQ DX, callFrame_rdx(DI)
	MOVQ X0, callFrame_xmm0(DI)
	MOVQ X1, callFrame_xmm1(DI)
	XORL AX, AX
	RET

//go:build linux && amd64

#include "textflag.h"
#include "go_asm.h"

// Both trampolines are entered by runtime.cgocall on the system stack
// with the C calling convention, the frame's address in DI. The frame is
// on the calling goroutine's stack, which a callback into Go during the
// call may move: they keep its depth below the goroutine's stack top
// (_cgo_topofstack, which clobbers AX and CX only) and find it again from
// there after the call, as cgo's generated C wrappers do. With the frame
// pointer the assembler adds, a frame size that is a multiple of 16
// keeps the stack 16-byte aligned at the CALL, as the ABI requires.

GLOBL ·callIntABI0(SB), NOPTR|RODATA, $8
DATA ·callIntABI0(SB)/8, $callInt<>(SB)

GLOBL ·callFrameABI0(SB), NOPTR|RODATA, $8
DATA ·callFrameABI0(SB)/8, $callFrame<>(SB)

// callInt calls intFrame.fn with the six integer arguments and stores
// RAX in intFrame.r. 0(SP): the frame's depth; 8(SP): RAX.
TEXT callInt<>(SB), NOSPLIT, $16
	MOVQ DI, R12
	CALL _cgo_topofstack(SB)
	SUBQ R12, AX
	MOVQ AX, 0(SP)

	MOVQ intFrame_a+8(R12), SI
	MOVQ intFrame_a+16(R12), DX
	MOVQ intFrame_a+24(R12), CX
	MOVQ intFrame_a+32(R12), R8
	MOVQ intFrame_a+40(R12), R9
	MOVQ intFrame_a+0(R12), DI
	MOVQ intFrame_fn(R12), R10
	// AL: no vector registers used, for variadic callees.
	XORL AX, AX
	CALL R10

	MOVQ AX, 8(SP)
	CALL _cgo_topofstack(SB)
	SUBQ 0(SP), AX
	MOVQ 8(SP), CX
	MOVQ CX, intFrame_r(AX)
	XORL AX, AX
	RET

// callFrame makes the call a Frame describes. 0(SP): the outgoing stack
// arguments (after the call, the four results); 64(SP): the frame's
// depth.
TEXT callFrame<>(SB), NOSPLIT, $80
	MOVQ DI, R11
	CALL _cgo_topofstack(SB)
	SUBQ R11, AX
	MOVQ AX, 64(SP)

	// Stack arguments, in order, at 0(SP).
	MOVQ Frame_NStack(R11), CX
	XORQ AX, AX
stackloop:
	CMPQ AX, CX
	JGE  stackdone
	MOVQ Frame_Stack(R11)(AX*8), R12
	MOVQ R12, 0(SP)(AX*8)
	INCQ AX
	JMP  stackloop
stackdone:

	MOVQ Frame_Floats+0(R11), X0
	MOVQ Frame_Floats+8(R11), X1
	MOVQ Frame_Floats+16(R11), X2
	MOVQ Frame_Floats+24(R11), X3
	MOVQ Frame_Floats+32(R11), X4
	MOVQ Frame_Floats+40(R11), X5
	MOVQ Frame_Floats+48(R11), X6
	MOVQ Frame_Floats+56(R11), X7

	MOVQ Frame_Ints+8(R11), SI
	MOVQ Frame_Ints+16(R11), DX
	MOVQ Frame_Ints+24(R11), CX
	MOVQ Frame_Ints+32(R11), R8
	MOVQ Frame_Ints+40(R11), R9
	MOVQ Frame_Ints+0(R11), DI

	// AL: the number of vector registers used, for variadic callees.
	MOVQ Frame_NFloat(R11), AX
	MOVQ Frame_Fn(R11), R10
	CALL R10

	MOVQ AX, 0(SP)
	MOVQ DX, 8(SP)
	MOVQ X0, 16(SP)
	MOVQ X1, 24(SP)
	CALL _cgo_topofstack(SB)
	SUBQ 64(SP), AX
	MOVQ 0(SP), CX
	MOVQ CX, Frame_RAX(AX)
	MOVQ 8(SP), CX
	MOVQ CX, Frame_RDX(AX)
	MOVQ 16(SP), CX
	MOVQ CX, Frame_XMM0(AX)
	MOVQ 24(SP), CX
	MOVQ CX, Frame_XMM1(AX)
	XORL AX, AX
	RET

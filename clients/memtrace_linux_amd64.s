//go:build linux && amd64

#include "textflag.h"

// func encodePlainAsm(p *byte, i int, recs *jit.TraceRecord, n int, code *uint64, ncode int, tally *memTally, prev uint64) (end int, took int, last uint64)
//
// encodePlain's loop (memtrace_linux_amd64.go, which is its
// specification and its tests' reference), with every value in a
// register: Go's keeps a dozen on the stack and reloads them each
// record. A record of a site that is not plain and defined (the code's
// bits above 40), or whose tag is not below ncode, ends the loop, as
// does the end of recs.
//
// Registers: DI the payload's cursor, SI the record, R8 the records'
// end, R9 code, R10 ncode, R11 tally, R12 the previous address; AX, BX,
// CX and DX scratch.
TEXT ·encodePlainAsm(SB), NOSPLIT, $0-88
	MOVQ p+0(FP), DI
	ADDQ i+8(FP), DI
	MOVQ recs+16(FP), SI
	MOVQ n+24(FP), R8
	SHLQ $4, R8
	ADDQ SI, R8
	MOVQ code+32(FP), R9
	MOVQ ncode+40(FP), R10
	MOVQ tally+48(FP), R11
	MOVQ prev+56(FP), R12

loop:
	CMPQ SI, R8
	JAE  done
	MOVL 8(SI), AX       // the tag, a site's number
	CMPQ AX, R10
	JAE  done
	MOVQ (R9)(AX*8), BX  // its code
	MOVQ BX, CX
	SHRQ $40, CX
	JNE  done            // not plain and defined
	SHLQ $4, AX
	INCQ (R11)(AX*1)     // tally[tag].n++
	MOVL BX, (DI)        // the tag's bytes, 4 stored
	SHRQ $32, BX
	MOVBQZX BX, BX
	ADDQ BX, DI          // and its length kept
	MOVQ (SI), AX        // the address
	MOVQ AX, DX
	SUBQ R12, DX         // minus the previous one
	MOVQ AX, R12
	LEAQ (DX)(DX*1), AX
	SARQ $63, DX
	XORQ DX, AX          // zigzag: u
	MOVQ AX, CX
	SHRQ $56, CX
	JNE  wide
	MOVQ AX, CX
	ORQ  $1, CX
	BSRQ CX, CX          // bit length - 1: b, 0 to 55
	IMUL3Q $37, CX, CX
	SHRQ $8, CX          // b/7 (exact below 64): the length n, less 1
	LEAQ 1(AX)(AX*1), AX // (u<<1 | 1) << (n-1) = u<<n | 1<<(n-1)
	SHLQ CX, AX
	MOVQ AX, (DI)
	LEAQ 1(DI)(CX*1), DI
	ADDQ $16, SI
	JMP  loop

wide:
	// u >= 2^56: a zero byte, then u's 8 bytes.
	MOVB $0, (DI)
	MOVQ AX, 1(DI)
	ADDQ $9, DI
	ADDQ $16, SI
	JMP  loop

done:
	SUBQ p+0(FP), DI
	MOVQ DI, end+64(FP)
	SUBQ recs+16(FP), SI
	SHRQ $4, SI
	MOVQ SI, took+72(FP)
	MOVQ R12, last+80(FP)
	RET

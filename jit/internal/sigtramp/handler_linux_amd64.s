//go:build linux && amd64

#include "textflag.h"

// ucontext offsets: uc_mcontext's gregs start at 40.
#define UC_REGS 40
#define UC_RSP 160
#define UC_RIP 168
#define UC_EFLAGS 176
#define UC_FPSTATE 224

// Context offsets (layout.go).
#define C_FLAGS 0x080
#define C_HOSTRSP 0x090
#define C_STATE 0x0b8
#define C_TID 0x0c0
#define C_LISTEN 0x0c8
#define C_EXIT 0x0d0
#define C_AREA 0x0d8
#define C_XSAVESIZE 0x0e0
#define C_ARRIVALS 0x0e8
#define C_FORWARDED 0x0f0
#define C_APPFS 0x0f8
#define C_HOSTFS 0x100
#define C_GATEEINTR 0x108

#define A_REGS 128
#define A_ARRIVALS 320
#define A_FORWARD 2368
#define A_XSAVE 10560
#define A_EFLAGS (128+17*8)
#define MAX_ARRIVALS 16

#define SIGILL 4
#define SIGTRAP 5
#define SIGBUS 7
#define SIGFPE 8
#define SIGSEGV 11
#define SIGURG 23
#define SIGPROF 27
#define TRAP_TRACE 2
#define SI_TKILL -6

#define SYS_write 1
#define SYS_getpid 39
#define SYS_gettid 186
#define SYS_tgkill 234
#define SYS_rt_tgsigqueueinfo 297
#define SYS_rt_sigreturn 15
#define SYS_rt_sigaction 13
#define SYS_arch_prctl 158
#define ARCH_SET_FS 0x1002
#define ARCH_GET_FS 0x1003

GLOBL ·handlerABI0(SB), NOPTR|RODATA, $8
DATA ·handlerABI0(SB)/8, $handler<>(SB)

GLOBL ·restorerABI0(SB), NOPTR|RODATA, $8
DATA ·restorerABI0(SB)/8, $restorer<>(SB)

// restorer is every handler's return address (sa_restorer).
TEXT restorer<>(SB), NOSPLIT|NOFRAME, $0
	MOVQ $SYS_rt_sigreturn, AX
	SYSCALL
	INT $3

// handler(sig DI, info SI, uc DX), called by the kernel with the C ABI.
// Registers need not be kept: rt_sigreturn restores them from uc, and a
// handler it chains to is given DI, SI and DX back.
//
// R12 sig, R13 info, R14 uc, BX the context, R15 its signal area, or,
// until the paths that chain to Go's handler, the context of the
// interrupted code when that is the cache or the routines (where FS may
// be the application's), else 0.
TEXT handler<>(SB), NOSPLIT|NOFRAME, $0
	MOVQ DI, R12
	MOVQ SI, R13
	MOVQ DX, R14
	XORQ R15, R15

	// Which region holds the interrupted PC?
	MOVQ UC_RIP(R14), R8
	LEAQ ·regions(SB), R9
	MOVQ ·nregions(SB), R10
find:
	TESTQ R10, R10
	JZ notcode
	MOVQ 0(R9), AX
	TESTQ AX, AX
	JZ findnext
	CMPQ R8, AX
	JCS findnext
	CMPQ R8, 8(R9)
	JCC findnext
	MOVQ 16(R9), BX
	MOVQ 24(R9), CX
	TESTQ CX, CX
	JZ fragments
	CMPQ CX, $2
	JEQ gate
	JMP routines
findnext:
	ADDQ $32, R9
	DECQ R10
	JMP find

// In translated code.
fragments:
	MOVQ BX, R15
	CMPL R12, $SIGURG
	JEQ done
	CMPL R12, $SIGPROF
	JEQ done
	CALL issync<>(SB)
	TESTQ AX, AX
	JNZ redirect
	// An asynchronous signal: the application's if it listens.
	CALL listens<>(SB)
	TESTQ AX, AX
	JZ chain
	CALL unforward<>(SB)
	JMP redirect

// In the context's own routines (entering or leaving the cache): the
// thread cannot be sent back from there. An asynchronous signal is
// recorded and the thread single-stepped until it is in translated code
// (where the step's trap redirects it) or back in Go.
routines:
	MOVQ BX, R15
	CMPL R12, $SIGTRAP
	JNE routines1
	CMPL 8(R13), $TRAP_TRACE
	JNE routines1
	TESTQ $2, C_STATE(BX)
	JNZ done
	ANDQ $~0x100, UC_EFLAGS(R14)
	JMP done
routines1:
	CMPL R12, $SIGURG
	JEQ done
	CMPL R12, $SIGPROF
	JEQ done
	CALL issync<>(SB)
	TESTQ AX, AX
	JNZ internal
	CALL listens<>(SB)
	TESTQ AX, AX
	JZ chain
	CALL unforward<>(SB)
	CALL record<>(SB)
	ORQ $0x100, UC_EFLAGS(R14)
	ORQ $0x100, C_FLAGS(BX)
	MOVQ C_AREA(BX), R15
	ORQ $0x100, A_EFLAGS(R15)
	ORQ $2, C_STATE(BX)
	JMP done

// In the window of the system-call gate: after it found no arrivals,
// before its syscall instruction. An asynchronous signal for the
// application is recorded, and the call is not made: the gate returns
// saying so, and the dispatcher looks at what arrived. (Once the call is
// made, a signal interrupts it with EINTR anyway, from outside the
// window.)
gate:
	CALL issync<>(SB)
	TESTQ AX, AX
	JNZ internal
	CALL listens<>(SB)
	TESTQ AX, AX
	JZ chain
	CALL unforward<>(SB)
	CALL record<>(SB)
	MOVQ C_GATEEINTR(BX), AX
	MOVQ AX, UC_RIP(R14)
	JMP done

// Send the thread back to the dispatcher: the signal, the registers and
// the vector state go to the area; the thread resumes at the exit routine
// on the host stack, with the trap flag off.
redirect:
	MOVQ C_AREA(BX), R15
	MOVQ R13, SI
	MOVQ R15, DI
	MOVQ $128, CX
	REP; MOVSB
	LEAQ UC_REGS(R14), SI
	LEAQ A_REGS(R15), DI
	MOVQ $184, CX
	REP; MOVSB
	MOVQ UC_FPSTATE(R14), SI
	TESTQ SI, SI
	JZ redirect1
	LEAQ A_XSAVE(R15), DI
	MOVQ C_XSAVESIZE(BX), CX
	REP; MOVSB
redirect1:
	// The trap of reachvm's own single step is marked so here, while the
	// state still says the thread steps: a signal that comes in sigexit,
	// before the dispatcher looks, steps the thread out into Go, where
	// the stepping bit is cleared, and the trap would then pass for the
	// application's.
	CMPL R12, $SIGTRAP
	JNE redirect2
	CMPL 8(R13), $TRAP_TRACE
	JNE redirect2
	TESTQ $2, C_STATE(BX)
	JZ redirect2
	ORQ $4, C_STATE(BX)
redirect2:
	ORQ $1, C_STATE(BX)
	MOVQ C_EXIT(BX), AX
	MOVQ AX, UC_RIP(R14)
	MOVQ C_HOSTRSP(BX), AX
	MOVQ AX, UC_RSP(R14)
	ANDQ $~0x100, UC_EFLAGS(R14)
	JMP done

// Not in code reachvm translated.
notcode:
	CMPL R12, $SIGTRAP
	JNE notcode1
	CMPL 8(R13), $TRAP_TRACE
	JNE notcode1
	// A single step that ran out of the cache into Go: stop stepping.
	// The application's saved flags lose the trap flag the routines'
	// path gave them (for a thread that was entering the cache): left
	// there, the next entry would step the application, and its trap
	// be taken for the application's own.
	CALL ownctx<>(SB)
	TESTQ BX, BX
	JZ chain
	TESTQ $2, C_STATE(BX)
	JZ chain
	ANDQ $~0x100, UC_EFLAGS(R14)
	ANDQ $~0x100, C_FLAGS(BX)
	ANDQ $~2, C_STATE(BX)
	JMP done
notcode1:
	CMPL R12, $SIGURG
	JEQ chain
	CMPL R12, $SIGPROF
	JEQ chain
	CALL issync<>(SB)
	TESTQ AX, AX
	JNZ chain
	// An asynchronous signal: the application's, on its own thread?
	CALL ownctx<>(SB)
	TESTQ BX, BX
	JZ notcode2
	CALL listens<>(SB)
	TESTQ AX, AX
	JZ notcode2
	CALL unforward<>(SB)
	CALL record<>(SB)
	JMP done
notcode2:
	// On another thread: forward it to a thread running a program
	// that listens, with its siginfo where the kernel lets a thread
	// queue one (rt_tgsigqueueinfo refuses the kernel's and kill's codes
	// from any thread but the main one), as a tgkill otherwise.
	CALL listener<>(SB)
	TESTQ BX, BX
	JZ chain
	MOVQ $SYS_getpid, AX
	SYSCALL
	MOVQ AX, DI
	MOVQ C_TID(BX), SI
	MOVQ R12, DX
	MOVQ R13, R10
	MOVQ $SYS_rt_tgsigqueueinfo, AX
	SYSCALL
	TESTQ AX, AX
	JZ done
	// Refused: leave the siginfo in the context and send a tgkill.
	MOVQ C_AREA(BX), DI
	MOVQ R12, AX
	DECQ AX
	SHLQ $7, AX
	LEAQ A_FORWARD(DI)(AX*1), DI
	MOVQ R13, SI
	MOVQ $128, CX
	REP; MOVSB
	MOVQ R12, AX
	DECQ AX
	LOCK
	BTSQ AX, C_FORWARDED(BX)
	MOVQ $SYS_getpid, AX
	SYSCALL
	MOVQ AX, DI
	MOVQ C_TID(BX), SI
	MOVQ R12, DX
	MOVQ $SYS_tgkill, AX
	SYSCALL
	JMP done

// A fault in reachvm's own routines: say so, then let Go report it.
internal:
	MOVQ $2, DI
	MOVQ ·internalMsg+0(SB), SI
	MOVQ ·internalMsg+8(SB), DX
	MOVQ $SYS_write, AX
	SYSCALL
	JMP chain

// Go's handler, or the action that was there before.
chain:
	LEAQ ·previous(SB), AX
	MOVQ (AX)(R12*8), AX
	CMPQ AX, $1
	JLS chaindfl
	TESTQ R15, R15
	JZ chainjmp
	MOVQ C_HOSTFS(R15), CX
	TESTQ CX, CX
	JZ chainjmp
	CMPQ CX, C_APPFS(R15)
	JEQ chainjmp
	// Interrupted where FS may be the application's: Go's handler runs
	// with Go's, and the interrupted code gets back the one it had
	// (which rt_sigreturn does not restore). 24 bytes keep the C ABI's
	// alignment at the call.
	SUBQ $24, SP
	MOVQ AX, 8(SP)
	MOVQ $ARCH_GET_FS, DI
	MOVQ SP, SI
	MOVQ $SYS_arch_prctl, AX
	SYSCALL
	MOVQ $ARCH_SET_FS, DI
	MOVQ C_HOSTFS(R15), SI
	MOVQ $SYS_arch_prctl, AX
	SYSCALL
	MOVQ R12, DI
	MOVQ R13, SI
	MOVQ R14, DX
	MOVQ 8(SP), AX
	CALL AX
	MOVQ $ARCH_SET_FS, DI
	MOVQ 0(SP), SI
	MOVQ $SYS_arch_prctl, AX
	SYSCALL
	ADDQ $24, SP
	RET
chainjmp:
	MOVQ R12, DI
	MOVQ R13, SI
	MOVQ R14, DX
	JMP AX
chaindfl:
	// SIG_IGN: nothing. SIG_DFL: the default action, from the kernel.
	JEQ done
	MOVQ R12, DI
	LEAQ ·defaultAction(SB), SI
	XORQ DX, DX
	MOVQ $8, R10
	MOVQ $SYS_rt_sigaction, AX
	SYSCALL
	MOVQ $SYS_getpid, AX
	SYSCALL
	MOVQ AX, R15
	MOVQ $SYS_gettid, AX
	SYSCALL
	MOVQ R15, DI
	MOVQ AX, SI
	MOVQ R12, DX
	MOVQ $SYS_tgkill, AX
	SYSCALL
done:
	RET

// issync sets AX to 1 if the signal was raised by an instruction
// (SIGSEGV, SIGBUS, SIGFPE, SIGILL or SIGTRAP with a positive si_code),
// 0 otherwise.
TEXT issync<>(SB), NOSPLIT|NOFRAME, $0
	XORQ AX, AX
	CMPL 8(R13), $0
	JLE issync0
	CMPL R12, $SIGSEGV
	JEQ issync1
	CMPL R12, $SIGBUS
	JEQ issync1
	CMPL R12, $SIGFPE
	JEQ issync1
	CMPL R12, $SIGILL
	JEQ issync1
	CMPL R12, $SIGTRAP
	JEQ issync1
issync0:
	RET
issync1:
	MOVQ $1, AX
	RET

// listens sets AX to non-zero if the context BX listens for the signal.
TEXT listens<>(SB), NOSPLIT|NOFRAME, $0
	MOVQ R12, CX
	DECQ CX
	MOVQ $1, AX
	SHLQ CX, AX
	ANDQ C_LISTEN(BX), AX
	RET

// ownctx sets BX to the context this thread runs, or 0. Clobbers AX,
// CX, DX, R9, R10, R11.
TEXT ownctx<>(SB), NOSPLIT|NOFRAME, $0
	MOVQ $SYS_gettid, AX
	SYSCALL
	MOVQ AX, DX
	LEAQ ·regions(SB), R9
	MOVQ ·nregions(SB), R10
ownctx1:
	XORQ BX, BX
	TESTQ R10, R10
	JZ ownctx2
	MOVQ 0(R9), AX
	TESTQ AX, AX
	JZ ownctx3
	MOVQ 16(R9), BX
	CMPQ C_TID(BX), DX
	JEQ ownctx2
ownctx3:
	ADDQ $32, R9
	DECQ R10
	JMP ownctx1
ownctx2:
	RET

// listener sets BX to a context run by some thread that listens for the
// signal, or 0.
TEXT listener<>(SB), NOSPLIT|NOFRAME, $0
	LEAQ ·regions(SB), R9
	MOVQ ·nregions(SB), R10
listener1:
	XORQ BX, BX
	TESTQ R10, R10
	JZ listener2
	MOVQ 0(R9), AX
	TESTQ AX, AX
	JZ listener3
	MOVQ 16(R9), BX
	CMPQ C_TID(BX), $0
	JEQ listener3
	CALL listens<>(SB)
	TESTQ AX, AX
	JNZ listener2
listener3:
	ADDQ $32, R9
	DECQ R10
	JMP listener1
listener2:
	RET

// unforward points R13 at the siginfo a forwarding thread left in the
// context BX, if this signal is its tgkill (SI_TKILL from this process)
// and one is there. Clobbers AX, CX, DI.
TEXT unforward<>(SB), NOSPLIT|NOFRAME, $0
	CMPL 8(R13), $SI_TKILL
	JNE unforward1
	MOVQ $SYS_getpid, AX
	SYSCALL
	CMPL 16(R13), AX
	JNE unforward1
	MOVQ R12, AX
	DECQ AX
	LOCK
	BTRQ AX, C_FORWARDED(BX)
	JCC unforward1
	MOVQ C_AREA(BX), DI
	SHLQ $7, AX
	LEAQ A_FORWARD(DI)(AX*1), R13
unforward1:
	RET

// record appends the siginfo to the context's arrivals.
TEXT record<>(SB), NOSPLIT|NOFRAME, $0
	MOVQ C_ARRIVALS(BX), AX
	CMPQ AX, $MAX_ARRIVALS
	JCC record1
	MOVQ C_AREA(BX), DI
	SHLQ $7, AX
	LEAQ A_ARRIVALS(DI)(AX*1), DI
	MOVQ R13, SI
	MOVQ $128, CX
	REP; MOVSB
	INCQ C_ARRIVALS(BX)
record1:
	RET

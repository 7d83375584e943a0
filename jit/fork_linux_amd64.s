//go:build linux && amd64

#include "textflag.h"
#include "go_asm.h"

#define SYS_rt_sigaction 13
#define SYS_rt_sigprocmask 14
#define SYS_rt_sigreturn 15
#define SYS_arch_prctl 158
#define SYS_exit_group 231
#define SIG_SETMASK 2
#define ARCH_SET_FS 0x1002
#define SIGKILL 9
#define SIGSTOP 19

GLOBL ·forkABI0(SB), NOPTR|RODATA, $8
DATA ·forkABI0(SB)/8, $fork<>(SB)

// fork(block DI) makes the system call the fork block describes
// (fork_linux_amd64.go, forkOff*) and returns its result in AX, in the
// parent. It is entered through internal/native (runtime.cgocall, the
// system stack, the C ABI), so the Go runtime sees a system call for as
// long as a vfork keeps the parent waiting.
//
// Every signal is blocked across the call, so that the child takes none
// before it has the application's dispositions; the parent gets its mask
// back from the block afterwards.
//
// The child runs no Go code and, until it leaves for the application,
// writes no memory: with CLONE_VM it shares the parent's, and without a
// new stack its stack pointer is the parent's, below the parent's frame.
// It installs the application's dispositions (every signal but SIGKILL
// and SIGSTOP), sets the application's FS base, and makes rt_sigreturn
// from the block's frame, which in one step gives it the application's
// mask, alternate stack, vector state, flags and registers and jumps to
// the instruction after the application's system call.
TEXT fork<>(SB), NOSPLIT|NOFRAME, $0
	PUSHQ R12
	MOVQ DI, R12

	MOVL $SYS_rt_sigprocmask, AX
	MOVL $SIG_SETMASK, DI
	LEAQ const_forkOffAllMask(R12), SI
	LEAQ const_forkOffOldMask(R12), DX
	MOVL $8, R10
	SYSCALL

	MOVQ const_forkOffNr(R12), AX
	MOVQ const_forkOffArgs+0(R12), DI
	MOVQ const_forkOffArgs+8(R12), SI
	MOVQ const_forkOffArgs+16(R12), DX
	MOVQ const_forkOffArgs+24(R12), R10
	MOVQ const_forkOffArgs+32(R12), R8
	MOVQ const_forkOffArgs+40(R12), R9
	SYSCALL
	TESTQ AX, AX
	JZ child

	// The parent (or a failed call): its own mask back.
	MOVQ AX, R9
	MOVL $SYS_rt_sigprocmask, AX
	MOVL $SIG_SETMASK, DI
	LEAQ const_forkOffOldMask(R12), SI
	XORL DX, DX
	MOVL $8, R10
	SYSCALL
	MOVQ R9, AX
	POPQ R12
	RET

child:
	// rt_sigaction(sig, &actions[sig-1], NULL, 8) for every signal:
	// none of reachvm's or Go's handlers stays.
	MOVL $1, BX
action:
	CMPL BX, $SIGKILL
	JEQ next
	CMPL BX, $SIGSTOP
	JEQ next
	LEAQ -1(BX), SI
	SHLQ $5, SI
	LEAQ const_forkOffActions(R12)(SI*1), SI
	MOVL BX, DI
	XORL DX, DX
	MOVL $8, R10
	MOVL $SYS_rt_sigaction, AX
	SYSCALL
next:
	INCL BX
	CMPL BX, $64
	JLE action

	MOVQ const_forkOffFS(R12), SI
	MOVL $ARCH_SET_FS, DI
	MOVL $SYS_arch_prctl, AX
	SYSCALL

	// rt_sigreturn reads the frame at rsp-8 (where a handler's ret
	// popped its return address).
	LEAQ const_forkOffFrame+8(R12), SP
	MOVL $SYS_rt_sigreturn, AX
	SYSCALL
	// Not reached: a frame the kernel refuses gets the child a SIGSEGV.
	MOVL $127, DI
	MOVL $SYS_exit_group, AX
	SYSCALL
	INT $3

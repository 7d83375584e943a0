/* stackovf: infinite recursion, caught by a SIGSEGV handler that runs on
 * an alternate signal stack (the faulting one has no room left), which
 * reports where it runs and exits. */
#include "rt.h"

static char altstack[64 << 10] __attribute__((aligned(16)));
static volatile long depth;

static void caught(int sig, rt_siginfo *si, void *ucv) {
	char here;
	rt_ucontext *uc = ucv;
	puts_("SIGSEGV caught\n");
	puts_(&here >= altstack && &here < altstack + sizeof altstack ? "on the alternate stack: yes\n" : "on the alternate stack: no\n");
	puts_(uc->uc_stack.ss_sp == altstack ? "uc_stack is the alternate stack: yes\n" : "uc_stack is the alternate stack: no\n");
	rt_stack now;
	rt_sigaltstack(0, &now);
	puts_(now.ss_flags & SS_ONSTACK ? "sigaltstack says on it: yes\n" : "sigaltstack says on it: no\n");
	/* The fault is below the stack pointer's page at most. */
	long gap = (long)uc->gregs[REG_RSP] - (long)si->u.addr;
	puts_(gap >= -4096 && gap <= 4096 ? "fault address at the stack pointer: yes\n" : "fault address at the stack pointer: no\n");
	puts_(depth > 1000 ? "deep recursion: yes\n" : "deep recursion: no\n");
	rt_exit(0);
}

/* Not a loop: the frame must grow. */
#pragma GCC diagnostic ignored "-Winfinite-recursion"
static long __attribute__((noinline)) recurse(long n) {
	volatile char buf[256];
	buf[0] = (char)n;
	depth = n;
	return recurse(n + 1) + buf[0];
}

int main(int argc, char **argv, char **envp) {
	/* 8 MiB: the usual limit, and what reachvm gives a program. */
	rt_cap_stack(8ul << 20);
	rt_stack ss = {altstack, 0, sizeof altstack};
	rt_sigaltstack(&ss, 0);
	rt_handle(SIGSEGV, caught, SA_ONSTACK, 0);
	puts_("recursing\n");
	return (int)recurse(0);
}

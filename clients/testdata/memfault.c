/* memfault: one block of three memory references whose second faults
 * on every other pass, the SIGSEGV handler jumping out of it; a trace
 * must hold the first two references' accesses on every pass and the
 * third's only on the passes that did not fault. mf_store0, mf_load and
 * mf_store1 name the three instructions. */
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static sigjmp_buf env;

static void segv(int sig)
{
	(void)sig;
	siglongjmp(env, 1);
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000;
	static long a[2], ok;
	struct sigaction sa = {0};
	sa.sa_handler = segv;
	sa.sa_flags = SA_NODEFER;
	sigaction(SIGSEGV, &sa, 0);
	long faults = 0;
	for (volatile long i = 0; i < n; i++) {
		long *p = i & 1 ? (long *)0 : &ok;
		if (sigsetjmp(env, 1)) {
			faults++;
			continue;
		}
		__asm__ volatile(
			".globl mf_store0\n"
			"mf_store0: movq $1, (%0)\n"
			".globl mf_load\n"
			"mf_load: movq (%1), %%rax\n"
			".globl mf_store1\n"
			"mf_store1: movq %%rax, 8(%0)\n"
			:
			: "r"(a), "r"(p)
			: "rax", "memory");
	}
	printf("%ld faults\n", faults);
	return 0;
}

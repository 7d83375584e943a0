/* die: a fault or a signal with no handler, which the process dies of.
 * argv[1] picks it:
 *
 *   null   a write through a null pointer        SIGSEGV
 *   div0   an integer division by zero           SIGFPE
 *   ud2    ud2                                   SIGILL
 *   int3   int3                                  SIGTRAP
 *   badop  an opcode invalid in 64-bit mode      SIGILL
 *   hlt    hlt (privileged)                      SIGSEGV
 *   stack  infinite recursion                    SIGSEGV
 *   usr1   kill(getpid(), SIGUSR1)               SIGUSR1 (status 138)
 *   alrm   setitimer, then a loop of pure
 *          computation                           SIGALRM
 *
 * It prints "before" first, and "survived" if it does.
 */
#include "rt.h"

/* Not a loop: the frame must grow. */
#pragma GCC diagnostic ignored "-Winfinite-recursion"
static long __attribute__((noinline)) recurse(long n) {
	volatile char buf[256];
	buf[0] = (char)n;
	return recurse(n + 1) + buf[0];
}

int main(int argc, char **argv, char **envp) {
	if (argc < 2)
		return 2;
	const char *m = argv[1];
	puts_("before\n");
	if (streq(m, "null")) {
		rt_store(0, 1);
	} else if (streq(m, "div0")) {
		long q;
		__asm__ volatile("xor %%edx, %%edx\n\tdiv %%rcx" : "=a"(q) : "a"(1), "c"(0) : "rdx");
	} else if (streq(m, "ud2")) {
		__asm__ volatile("ud2");
	} else if (streq(m, "int3")) {
		__asm__ volatile("int3");
	} else if (streq(m, "badop")) {
		__asm__ volatile(".byte 0x06");
	} else if (streq(m, "hlt")) {
		__asm__ volatile("hlt");
	} else if (streq(m, "stack")) {
		rt_cap_stack(8ul << 20);
		recurse(0);
	} else if (streq(m, "usr1")) {
		rt_kill(rt_getpid(), SIGUSR1);
	} else if (streq(m, "alrm")) {
		rt_setitimer(10000, 0);
		volatile u64 x = 1;
		for (;;)
			x = x * 6364136223846793005ul + 1442695040888963407ul;
	} else {
		return 2;
	}
	puts_("survived\n");
	return 0;
}

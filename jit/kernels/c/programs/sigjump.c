/* sigjump: leaving a handler by siglongjmp. Three null-pointer writes
 * and a division by zero, each left through rt_siglongjmp, which
 * restores the signal mask (SIGSEGV unblocked again); then one left
 * through rt_longjmp, which does not: SIGSEGV stays blocked, and the
 * next fault kills the process (a blocked synchronous fault is not
 * deliverable: the kernel kills with it).
 */
#include "rt.h"

static rt_jmpbuf jb;
static int plain;

static void jump(int sig, rt_siginfo *si, void *uc) {
	if (plain)
		rt_longjmp(&jb, sig);
	rt_siglongjmp(&jb, sig);
}

static void blocked(void) {
	puts_(rt_blocked() & SIGBIT(SIGSEGV) ? "SIGSEGV blocked\n" : "SIGSEGV not blocked\n");
}

int main(int argc, char **argv, char **envp) {
	rt_handle(SIGSEGV, jump, 0, 0);
	rt_handle(SIGFPE, jump, 0, 0);
	for (volatile int i = 0; i < 3; i++) {
		int sig = rt_sigsetjmp(&jb);
		if (sig == 0) {
			rt_store(0, i);
			puts_("not reached\n");
		}
		say("back from the handler of signal ", sig);
		blocked();
	}
	int sig = rt_sigsetjmp(&jb);
	if (sig == 0) {
		long q;
		__asm__ volatile("xor %%edx, %%edx\n\tdiv %%rcx" : "=a"(q) : "a"(1), "c"(0) : "rdx");
		puts_("not reached\n");
	}
	say("back from the handler of signal ", sig);
	plain = 1;
	sig = rt_setjmp(&jb);
	if (sig == 0) {
		rt_store(0, 4);
		puts_("not reached\n");
	}
	say("back through longjmp from the handler of signal ", sig);
	blocked();
	puts_("fault while blocked\n");
	rt_store(0, 5);
	puts_("survived\n");
	return 0;
}

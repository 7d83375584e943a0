/* skiprip: a handler that moves uc_mcontext's rip past the faulting
 * instruction and returns: ud2, a load through a null pointer, a division
 * by zero and an invalid opcode, ten times each; the code after each one
 * runs with the registers as they were (rdx holds 7 across the faults).
 * int3 reports the instruction after it: the handler leaves rip alone.
 */
#include "rt.h"

/* The faulting instructions and what follows each, as labels. */
extern char at_ud2[], after_ud2[], at_load[], after_load[], at_div[], after_div[], at_bad[], after_bad[], after_int3[]
	__attribute__((visibility("hidden")));

static int counts[5];

static void skip(int sig, rt_siginfo *si, void *ucv) {
	rt_ucontext *uc = ucv;
	u64 *rip = &uc->gregs[REG_RIP];
	if (*rip == (u64)at_ud2)
		*rip = (u64)after_ud2, counts[0]++;
	else if (*rip == (u64)at_load)
		*rip = (u64)after_load, counts[1]++;
	else if (*rip == (u64)at_div)
		*rip = (u64)after_div, counts[2]++;
	else if (*rip == (u64)at_bad)
		*rip = (u64)after_bad, counts[3]++;
	else if (*rip == (u64)after_int3)
		counts[4]++;
	else {
		puts_("fault at an unknown place\n");
		rt_exit(3);
	}
}

static long __attribute__((noinline, noclone)) faults(long x) {
	long rdx = 7, rax = 0, zero = 0;
	__asm__ volatile("at_ud2: ud2\nafter_ud2: add %%rdx, %0\n"
			 "at_load: mov (%3), %%rax\nafter_load: add %%rdx, %0\n"
			 "at_div: div %3\nafter_div: add %%rdx, %0\n"
			 "at_bad: .byte 0x06\nafter_bad: add %%rdx, %0\n"
			 "int3\nafter_int3: add %%rdx, %0\n"
			 : "+r"(x), "+d"(rdx), "+a"(rax)
			 : "r"(zero)
			 : "memory");
	return x;
}

int main(int argc, char **argv, char **envp) {
	for (int s = SIGILL; s <= SIGSEGV; s++)
		rt_handle(s, skip, 0, 0);
	long sum = 0;
	for (int i = 0; i < 10; i++)
		sum += faults(i);
	say("sum: ", sum);
	say("ud2 skipped: ", counts[0]);
	say("load skipped: ", counts[1]);
	say("div skipped: ", counts[2]);
	say("bad opcode skipped: ", counts[3]);
	say("int3 reported: ", counts[4]);
	return 0;
}

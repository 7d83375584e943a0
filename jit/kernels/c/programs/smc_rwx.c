/* smc_rwx: code in a read-write-execute page rewritten while it runs:
 *  - rewrite: `mov eax, imm; ret` is given a new immediate and called, 100
 *    times;
 *  - self: a function that stores its argument into the immediate of its
 *    own next instruction (`mov [rip+1], edi; mov eax, imm; ret`) and
 *    returns it, 100 times;
 *  - mixed: a counter on the same page as the code that reads it, bumped
 *    by the program between calls, 100 times.
 * It prints each part's sum and how many calls returned something other
 * than what was just written (0 natively). */
#include "rt.h"
#include "../jitcode.h"

#define PG 4096L

static void report(const char *what, long sum, long bad) {
	puts_(what);
	puts_(" sum ");
	putn(sum);
	puts_(" mismatches ");
	putn(bad);
	puts_("\n");
}

int main(int argc, char **argv, char **envp) {
	volatile unsigned char *p = (unsigned char *)rt_mmap(0, PG, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if ((long)p < 0)
		return 1;
	long sum = 0, bad = 0;
	for (int i = 0; i < 100; i++) {
		jit_mov_ret(p, 3 * i + 1);
		int r = ((int (*)(void))p)();
		sum += r;
		bad += r != 3 * i + 1;
	}
	report("rewrite", sum, bad);

	static const unsigned char self[] = {
		0x89, 0x3d, 1, 0, 0, 0, /* mov [rip+1], edi */
		0xb8, 0, 0, 0, 0, /* mov eax, imm */
		0xc3, /* ret */
	};
	volatile unsigned char *s = p + 64;
	for (unsigned i = 0; i < sizeof self; i++)
		s[i] = self[i];
	sum = bad = 0;
	for (int i = 0; i < 100; i++) {
		int r = ((int (*)(int))s)(7 * i);
		sum += r;
		bad += r != 7 * i;
	}
	report("self", sum, bad);

	/* mov eax, [rip+disp]; ret, reading the counter 2 KiB on. */
	static const unsigned char load[] = {0x8b, 0x05, 0, 0, 0, 0, 0xc3};
	volatile unsigned char *l = p + 128;
	volatile int *counter = (volatile int *)(p + 2048);
	for (unsigned i = 0; i < sizeof load; i++)
		l[i] = load[i];
	int disp = 2048 - (128 + 6);
	jit_imm32(l + 2, disp);
	sum = bad = 0;
	for (int i = 0; i < 100; i++) {
		*counter = i * i;
		int r = ((int (*)(void))l)();
		sum += r;
		bad += r != i * i;
	}
	report("mixed", sum, bad);
	return 0;
}

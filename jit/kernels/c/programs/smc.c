/* smc: code that changes after it has run. argv[1]:
 *
 *   imm       a function in an RWX page, `mov eax, imm32; ret`, called
 *             100 times with its immediate rewritten before each call
 *   mprotect  a function written in an RW page made RX, called, then
 *             made RW, rewritten, made RX and called again
 *   remap     a function in a page that is unmapped and mapped again
 *             (MAP_FIXED) at the same address with other code
 *
 * It prints the results, and the calls whose result was not the
 * function's current code's.
 */
#include "rt.h"

typedef int (*fn)(void);

/* movret writes `mov eax, v; ret` at p. */
static void movret(unsigned char *p, int v) {
	p[0] = 0xb8;
	p[1] = (unsigned char)v;
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)(v >> 16);
	p[4] = (unsigned char)(v >> 24);
	p[5] = 0xc3;
}

static int mismatches;

static void check(const char *what, int got, int want) {
	if (got == want)
		return;
	mismatches++;
	puts_(what);
	puts_(": got ");
	putn(got);
	puts_(", want ");
	putn(want);
	puts_("\n");
}

int main(int argc, char **argv, char **envp) {
	if (argc < 2)
		return 2;
	const char *m = argv[1];
	if (streq(m, "imm")) {
		unsigned char *p = rt_mmap(0, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return 3;
		movret(p, 0);
		for (int i = 0; i < 100; i++) {
			/* Only the immediate changes. */
			*(volatile int *)(p + 1) = i * 3 + 1;
			check("call", ((fn)p)(), i * 3 + 1);
		}
		puts_("100 calls\n");
	} else if (streq(m, "mprotect")) {
		unsigned char *p = rt_mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return 3;
		for (int i = 1; i <= 5; i++) {
			movret(p, i * 11);
			say("mprotect RX: ", rt_mprotect(p, 4096, PROT_READ | PROT_EXEC));
			int r = ((fn)p)();
			say("result: ", r);
			check("call", r, i * 11);
			say("mprotect RW: ", rt_mprotect(p, 4096, PROT_READ | PROT_WRITE));
		}
	} else if (streq(m, "remap")) {
		unsigned char *p = rt_mmap(0, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return 3;
		for (int i = 1; i <= 5; i++) {
			movret(p, i * 7);
			int r = ((fn)p)();
			say("result: ", r);
			check("call", r, i * 7);
			say("munmap: ", rt_munmap(p, 4096));
			unsigned char *q = rt_mmap(p, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
			puts_(q == p ? "mapped again at the same address\n" : "mapped elsewhere\n");
		}
	} else {
		return 2;
	}
	say("mismatches: ", mismatches);
	return 0;
}

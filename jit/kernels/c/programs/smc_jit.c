/* smc_jit: a JIT in miniature. It writes 1,000 functions of 16 bytes
 * into read-write-execute memory (function i: `lea eax, [rdi+k]; ret`),
 * calls each, rewrites every other one with a new constant and calls all
 * again, then rewrites and calls them one at a time (each write right
 * after code on the same page ran), and prints the sums. With "bench N"
 * it does the whole N times and prints the last sums; with "hot N" it
 * writes the functions once and calls them all N times (code that does
 * not change after it is written), and prints the sum. */
#include "rt.h"
#include "../jitcode.h"

#define PG 4096L
#define NFN 1000

static long run(unsigned char *code, long arg) {
	long sum = 0;
	for (int i = 0; i < NFN; i++)
		sum += ((int (*)(long))(code + 16 * i))(arg);
	return sum;
}

int main(int argc, char **argv, char **envp) {
	long rounds = 1;
	if (argc > 2 && streq(argv[1], "bench"))
		rounds = atol_(argv[2]);
	unsigned char *code = (unsigned char *)rt_mmap(0, NFN * 16, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if ((long)code < 0)
		return 1;
	if (argc > 2 && streq(argv[1], "hot")) {
		long n = atol_(argv[2]), sum = 0;
		for (int i = 0; i < NFN; i++)
			jit_lea_ret(code + 16 * i, i);
		for (long r = 0; r < n; r++)
			sum += run(code, r);
		line("hot", sum);
		return 0;
	}
	long a = 0, b = 0, c = 0;
	for (long r = 0; r < rounds; r++) {
		for (int i = 0; i < NFN; i++)
			jit_lea_ret(code + 16 * i, i);
		a = run(code, 1);
		for (int i = 0; i < NFN; i += 2)
			jit_lea_ret(code + 16 * i, 3 * i + r);
		b = run(code, 2);
		c = 0;
		for (int i = 0; i < NFN; i += 2) {
			jit_lea_ret(code + 16 * i, 5 * i);
			c += ((int (*)(long))(code + 16 * i))(3);
		}
	}
	line("first", a);
	line("rewritten", b);
	line("one at a time", c);
	return 0;
}

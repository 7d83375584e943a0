/* smc_jit: a JIT in miniature. It writes 1,000 functions of 16 bytes
 * into read-write-execute memory (function i: `lea eax, [rdi+k]; ret`),
 * calls each, rewrites every other one with a new constant and calls all
 * again, then rewrites and calls them one at a time (each write right
 * after code on the same page ran), and prints the sums. With "bench N"
 * it does the whole N times and prints the last sums; with "hot N" it
 * writes the functions once and calls them all N times (code that does
 * not change after it is written), and prints the sum. */
#include "rt.h"

#define PG 4096L
#define NFN 1000

static long mmap_(long addr, long len, long prot, long flags, long fd, long off) {
	return sys6(9, addr, len, prot, flags, fd, off);
}

/* emit writes function i: lea eax, [rdi+k]; ret. */
static void emit(volatile unsigned char *code, int i, int k) {
	volatile unsigned char *f = code + 16 * i;
	f[0] = 0x8d;
	f[1] = 0x87;
	f[2] = k;
	f[3] = k >> 8;
	f[4] = k >> 16;
	f[5] = k >> 24;
	f[6] = 0xc3;
}

static long run(unsigned char *code, long arg) {
	long sum = 0;
	for (int i = 0; i < NFN; i++)
		sum += ((int (*)(long))(code + 16 * i))(arg);
	return sum;
}

static void show(const char *what, long v) {
	puts_(what);
	puts_(" ");
	putn(v);
	puts_("\n");
}

int main(int argc, char **argv, char **envp) {
	long rounds = 1;
	if (argc > 2 && streq(argv[1], "bench"))
		rounds = atol_(argv[2]);
	unsigned char *code = (unsigned char *)mmap_(0, NFN * 16, 7, 0x22, -1, 0);
	if ((long)code < 0)
		return 1;
	if (argc > 2 && streq(argv[1], "hot")) {
		long n = atol_(argv[2]), sum = 0;
		for (int i = 0; i < NFN; i++)
			emit(code, i, i);
		for (long r = 0; r < n; r++)
			sum += run(code, r);
		show("hot", sum);
		return 0;
	}
	long a = 0, b = 0, c = 0;
	for (long r = 0; r < rounds; r++) {
		for (int i = 0; i < NFN; i++)
			emit(code, i, i);
		a = run(code, 1);
		for (int i = 0; i < NFN; i += 2)
			emit(code, i, 3 * i + r);
		b = run(code, 2);
		c = 0;
		for (int i = 0; i < NFN; i += 2) {
			emit(code, i, 5 * i);
			c += ((int (*)(long))(code + 16 * i))(3);
		}
	}
	show("first", a);
	show("rewritten", b);
	show("one at a time", c);
	return 0;
}

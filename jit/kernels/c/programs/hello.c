/* hello: prints its arguments and one environment variable, grows and
 * uses the brk area, maps and unmaps anonymous memory, calls through a
 * table of function pointers (RELATIVE relocations in a static PIE), and
 * exits with the code given as its first argument. */
#include "rt.h"

static long twice(long x) { return 2 * x; }
static long square(long x) { return x * x; }
static long (*const table[])(long) = {twice, square};

int main(int argc, char **argv, char **envp) {
	puts_("hello from a static program, argc=");
	putn(argc);
	puts_("\n");
	for (int i = 0; i < argc; i++) {
		puts_("argv: ");
		puts_(argv[i]);
		puts_("\n");
	}
	for (char **e = envp; *e; e++)
		if ((*e)[0] == 'R' && (*e)[1] == 'V' && (*e)[2] == '=') {
			puts_("env: ");
			puts_(*e);
			puts_("\n");
		}
	/* brk: grow by 1 MiB, touch it, shrink. */
	char *b0 = (char *)sys3(12, 0, 0, 0);
	char *b1 = (char *)sys3(12, b0 + (1 << 20), 0, 0);
	long sum = 0;
	if (b1 == b0 + (1 << 20)) {
		for (long i = 0; i < (1 << 20); i += 4096)
			b0[i] = (char)i, sum += b0[i];
		sys3(12, b0, 0, 0);
		puts_("brk ok\n");
	}
	/* mmap anonymous, use, unmap. */
	long *m = (long *)sys6(9, 0, 1 << 16, 3, 0x22, -1, 0);
	if ((long)m > 0) {
		for (int i = 0; i < 8192; i++)
			m[i] = i;
		sum += m[8191];
		puts_(sys3(11, m, 1 << 16, 0) == 0 ? "mmap ok\n" : "munmap failed\n");
	}
	puts_("table: ");
	putn(table[0](21) + table[1](3));
	puts_("\nsum: ");
	putn(sum);
	puts_("\n");
	return argc > 1 ? (int)atol_(argv[1]) : 0;
}

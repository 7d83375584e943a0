/* jumptab: jumps through tables the translator turns into tables of
 * translated code. A switch (gcc's jump table in .rodata, PC-relative
 * entries in a static PIE), and a computed goto through a table of label
 * addresses on a page of its own, which the program then makes writable,
 * changes (two entries swapped) and makes read-only again, twice: it
 * prints what the table says each time, as natively (a translator that
 * kept its first table prints the first order three times). The
 * computed goto runs only when asked ("jumptab goto"): in a static PIE,
 * which nothing relocates, its table of label addresses would hold the
 * link-time ones. */
#include "rt.h"

#define PG 4096L

static long sw(long op, long x) {
	switch (op & 7) {
	case 0: return x + 3;
	case 1: return x * 5;
	case 2: return x ^ 0x55;
	case 3: return x - 11;
	case 4: return x << 2;
	case 5: return x >> 1;
	case 6: return ~x;
	default: return x + op;
	}
}

/* run dispatches i through the table t, a copy of its labels' addresses
 * (which run(0, 0) returns) on a page of its own, read-only: gcc's
 * `jmp *(%rdi,%rsi,8)`, whose base register comes from the caller. */
static __attribute__((noinline)) long run(const void *const *t, long i) {
	static const void *const labels[4] = {&&a, &&b, &&c, &&d};
	if (!t)
		return (long)labels;
	goto *t[i & 3];
a:
	return 1;
b:
	return 2;
c:
	return 3;
d:
	return 4;
}

int main(int argc, char **argv, char **envp) {
	long s = 0;
	for (long i = 0; i < 100000; i++)
		s = s * 3 + sw(i * 7 + (i >> 3), i);
	puts_("switch ");
	putn(s);
	puts_("\n");
	if (argc < 2)
		return 0;
	const void **t = (const void **)rt_mmap(0, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if ((long)t < 0)
		return 1;
	const void *const *labels = (const void *const *)run(0, 0);
	for (int i = 0; i < 4; i++)
		t[i] = labels[i];
	for (int round = 0; round < 3; round++) {
		if (rt_mprotect(t, PG, PROT_READ) != 0)
			return 2;
		long order = 0;
		for (long i = 0; i < 4; i++)
			for (long k = 0; k < 1000; k++)
				order = k == 0 ? order * 10 + run(t, i) : order + 0 * run(t, i);
		puts_("goto ");
		putn(order);
		puts_("\n");
		if (rt_mprotect(t, PG, PROT_READ | PROT_WRITE) != 0)
			return 3;
		const void *x = t[0];
		t[0] = t[1];
		t[1] = x;
	}
	return 0;
}

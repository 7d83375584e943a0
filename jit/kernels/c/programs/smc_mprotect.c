/* smc_mprotect: code written into a read-write page, made read-execute,
 * called; then the page made writable again, the code rewritten, made
 * read-execute and called again, three times: it prints 7, 8 and 9, as
 * natively (a translator that kept its first translation prints 7 three
 * times). Then the page is made read-execute once more, unchanged, and
 * called: 9 again. */
#include "rt.h"

#define PG 4096L

static long mmap_(long addr, long len, long prot, long flags, long fd, long off) {
	return sys6(9, addr, len, prot, flags, fd, off);
}

/* put writes `mov eax, v; ret` at p. */
static void put(volatile unsigned char *p, int v) {
	p[0] = 0xb8;
	p[1] = v;
	p[2] = v >> 8;
	p[3] = v >> 16;
	p[4] = v >> 24;
	p[5] = 0xc3;
}

static void call(unsigned char *p) {
	putn(((int (*)(void))p)());
	puts_("\n");
}

int main(int argc, char **argv, char **envp) {
	unsigned char *p = (unsigned char *)mmap_(0, PG, 3, 0x22, -1, 0);
	if ((long)p < 0)
		return 1;
	for (int v = 7; v <= 9; v++) {
		if (sys3(10, p, PG, 3) != 0)
			return 2;
		put(p, v);
		if (sys3(10, p, PG, 5) != 0)
			return 3;
		call(p);
	}
	if (sys3(10, p, PG, 5) != 0)
		return 4;
	call(p);
	return 0;
}

/* smc_remap: code replaced by memory calls other than a write to it:
 *  - munmap, then a new mapping at the same address with MAP_FIXED and
 *    new code (7, then 8), then MAP_FIXED over it, read-write-execute,
 *    with new code (9);
 *  - brk shrunk below a page of code and grown again over fresh memory
 *    with new code (7, then 8);
 *  - a private view of this program's own file, patched (7), dropped with
 *    madvise(MADV_DONTNEED): the page reads the file again (9).
 * It prints one number a line, as natively (a translator that kept its
 * translations prints the first number again). */
#include "rt.h"

#define PG 4096L

static long mmap_(long addr, long len, long prot, long flags, long fd, long off) {
	return sys6(9, addr, len, prot, flags, fd, off);
}

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

/* nine returns 9, alone on its page of the file. */
__asm__(".section .text.smc_nine,\"ax\",@progbits\n"
	".balign 4096\n"
	".globl smc_nine\n"
	"smc_nine:\n"
	"\tmovl $9, %eax\n"
	"\tret\n"
	".balign 4096\n"
	".previous\n");
extern unsigned char smc_nine[];
extern unsigned char __ehdr_start[];

int main(int argc, char **argv, char **envp) {
	/* munmap and MAP_FIXED. */
	unsigned char *p = (unsigned char *)mmap_(0, PG, 3, 0x22, -1, 0);
	if ((long)p < 0)
		return 1;
	put(p, 7);
	if (sys3(10, p, PG, 5) != 0)
		return 2;
	call(p);
	if (sys3(11, p, PG, 0) != 0)
		return 3;
	if (mmap_((long)p, PG, 3, 0x22 | 0x10, -1, 0) != (long)p)
		return 4;
	put(p, 8);
	if (sys3(10, p, PG, 5) != 0)
		return 5;
	call(p);
	if (mmap_((long)p, PG, 7, 0x22 | 0x10, -1, 0) != (long)p)
		return 6;
	put(p, 9);
	call(p);

	/* brk. */
	long b0 = sys3(12, 0, 0, 0);
	unsigned char *q = (unsigned char *)((b0 + PG - 1) & -PG);
	if (sys3(12, q + PG, 0, 0) != (long)(q + PG))
		return 7;
	put(q, 7);
	if (sys3(10, q, PG, 5) != 0)
		return 8;
	call(q);
	if (sys3(12, q, 0, 0) != (long)q || sys3(12, q + PG, 0, 0) != (long)(q + PG))
		return 9;
	put(q, 8);
	if (sys3(10, q, PG, 5) != 0)
		return 10;
	call(q);

	/* madvise(MADV_DONTNEED) on a private view of the file. */
	long fd = sys3(2, argv[0], 0, 0);
	if (fd < 0)
		return 11;
	long off = smc_nine - __ehdr_start;
	unsigned char *v = (unsigned char *)mmap_(0, PG, 3, 0x02, fd, off);
	sys3(3, fd, 0, 0);
	if ((long)v < 0 || v[0] != 0xb8 || v[1] != 9)
		return 12;
	v[1] = 7;
	if (sys3(10, v, PG, 5) != 0)
		return 13;
	call(v);
	if (sys3(28, v, PG, 4) != 0)
		return 14;
	call(v);
	return 0;
}

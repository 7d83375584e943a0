/* smc_syscall: system calls write into a read-write-execute page of code
 * that has run (which a translator may have write-protected), and each
 * succeeds as natively:
 *  - read from a pipe brings new code (7, then 8);
 *  - pread64 from this program's own file brings the code of smc_nine
 *    (9) in a buffer that starts at the end of the page before: a kernel
 *    that cannot write the code page stops there, with a short count;
 *  - clock_gettime and getrandom write past the code on the same page.
 * It prints the code's result and each call's. */
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

static void result(const char *what, long r) {
	puts_(what);
	puts_(" ");
	putn(r);
	puts_("\n");
}

/* smc_nine returns 9, at the start of a page of the file. */
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
	unsigned char *p = (unsigned char *)mmap_(0, 2 * PG, 7, 0x22, -1, 0);
	if ((long)p < 0)
		return 1;
	p += PG;
	put(p, 7);
	call(p);
	int fds[2];
	if (sys3(22, fds, 0, 0) != 0)
		return 2;
	unsigned char code[6];
	put(code, 8);
	if (sys3(1, fds[1], code, 6) != 6)
		return 3;
	result("read", sys3(0, fds[0], p, 6));
	call(p);
	long fd = sys3(2, argv[0], 0, 0);
	if (fd < 0)
		return 4;
	result("pread64", sys6(17, fd, (long)(p - 2), 8, smc_nine - __ehdr_start - 2, 0, 0));
	call(p);
	result("clock_gettime", sys3(228, 1, p + 2048, 0));
	call(p);
	result("getrandom", sys3(318, p + 3000, 16, 0));
	call(p);
	return 0;
}

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
#include "../jitcode.h"

#define PG 4096L

/* smc_nine returns 9, alone at the start of a page of the file. */
RT_PAGE_FUNC(smc_nine, 9);

int main(int argc, char **argv, char **envp) {
	unsigned char *p = (unsigned char *)rt_mmap(0, 2 * PG, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if ((long)p < 0)
		return 1;
	p += PG;
	jit_mov_ret(p, 7);
	call_print(p);
	int fds[2];
	if (sys3(22, fds, 0, 0) != 0)
		return 2;
	unsigned char code[6];
	jit_mov_ret(code, 8);
	if (sys3(1, fds[1], code, 6) != 6)
		return 3;
	line("read", sys3(0, fds[0], p, 6));
	call_print(p);
	long fd = sys3(2, argv[0], 0, 0);
	if (fd < 0)
		return 4;
	line("pread64", sys6(17, fd, (long)(p - 2), 8, smc_nine - __ehdr_start - 2, 0, 0));
	call_print(p);
	line("clock_gettime", sys3(228, 1, p + 2048, 0));
	call_print(p);
	line("getrandom", sys3(318, p + 3000, 16, 0));
	call_print(p);
	return 0;
}

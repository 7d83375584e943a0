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
#include "../jitcode.h"

#define PG 4096L

/* smc_nine returns 9, alone at the start of a page of the file. */
RT_PAGE_FUNC(smc_nine, 9);

int main(int argc, char **argv, char **envp) {
	/* munmap and MAP_FIXED. */
	unsigned char *p = (unsigned char *)rt_mmap(0, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if ((long)p < 0)
		return 1;
	jit_mov_ret(p, 7);
	if (rt_mprotect(p, PG, PROT_READ | PROT_EXEC) != 0)
		return 2;
	call_print(p);
	if (rt_munmap(p, PG) != 0)
		return 3;
	if (rt_mmap(p, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != p)
		return 4;
	jit_mov_ret(p, 8);
	if (rt_mprotect(p, PG, PROT_READ | PROT_EXEC) != 0)
		return 5;
	call_print(p);
	if (rt_mmap(p, PG, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != p)
		return 6;
	jit_mov_ret(p, 9);
	call_print(p);

	/* brk. */
	long b0 = sys3(12, 0, 0, 0);
	unsigned char *q = (unsigned char *)((b0 + PG - 1) & -PG);
	if (sys3(12, q + PG, 0, 0) != (long)(q + PG))
		return 7;
	jit_mov_ret(q, 7);
	if (rt_mprotect(q, PG, PROT_READ | PROT_EXEC) != 0)
		return 8;
	call_print(q);
	if (sys3(12, q, 0, 0) != (long)q || sys3(12, q + PG, 0, 0) != (long)(q + PG))
		return 9;
	jit_mov_ret(q, 8);
	if (rt_mprotect(q, PG, PROT_READ | PROT_EXEC) != 0)
		return 10;
	call_print(q);

	/* madvise(MADV_DONTNEED) on a private view of the file. */
	long fd = sys3(2, argv[0], 0, 0);
	if (fd < 0)
		return 11;
	long off = smc_nine - __ehdr_start;
	unsigned char *v = (unsigned char *)rt_mmap(0, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, off);
	sys3(3, fd, 0, 0);
	if ((long)v < 0 || v[0] != 0xb8 || v[1] != 9)
		return 12;
	v[1] = 7;
	if (rt_mprotect(v, PG, PROT_READ | PROT_EXEC) != 0)
		return 13;
	call_print(v);
	if (sys3(28, v, PG, 4) != 0)
		return 14;
	call_print(v);
	return 0;
}

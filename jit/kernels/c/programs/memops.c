/* memops: exercises the memory system calls a program makes, checking
 * each result, and leaves some mappings in place for the caller to find:
 * brk grown and shrunk; an anonymous mapping written, partly reprotected,
 * partly unmapped, partly replaced with MAP_FIXED; MAP_FIXED_NOREPLACE
 * over it refused; a PROT_NONE mapping made accessible; a private view of
 * the program's own file. It prints one line per step and exits with 0,
 * or with the number of the first step that went wrong. With "bench N" it
 * maps and unmaps 64 KiB N times instead. */
#include "rt.h"

#define PG 4096L
#define EINVAL 22
#define EEXIST 17

static long mmap_(long addr, long len, long prot, long flags, long fd, long off) {
	return sys6(9, addr, len, prot, flags, fd, off);
}

static int step(int n, const char *what, int ok) {
	puts_(what);
	puts_(ok ? " ok\n" : " FAILED\n");
	return ok ? 0 : n;
}

int main(int argc, char **argv, char **envp) {
	if (argc > 2 && streq(argv[1], "bench")) {
		long n = atol_(argv[2]);
		for (long i = 0; i < n; i++) {
			char *m = (char *)mmap_(0, 16 * PG, 3, 0x22, -1, 0);
			if ((long)m < 0)
				return 1;
			m[0] = 1;
			if (sys3(11, m, 16 * PG, 0) != 0)
				return 2;
		}
		return 0;
	}
	int bad = 0;
	/* 1: brk grows by 64 KiB, is written, shrinks by 16 KiB. */
	char *b0 = (char *)sys3(12, 0, 0, 0);
	char *b1 = (char *)sys3(12, b0 + 16 * PG, 0, 0);
	if (b1 == b0 + 16 * PG)
		for (long i = 0; i < 16 * PG; i += PG)
			b0[i] = 1;
	char *b2 = (char *)sys3(12, b0 + 12 * PG, 0, 0);
	bad = bad ? bad : step(1, "brk", b1 == b0 + 16 * PG && b2 == b0 + 12 * PG && b0[11 * PG] == 1);

	/* 2: 16 pages read-write, written. */
	char *m = (char *)mmap_(0, 16 * PG, 3, 0x22, -1, 0);
	int ok = (long)m > 0 && ((long)m & (PG - 1)) == 0;
	if (ok)
		for (long i = 0; i < 16 * PG; i += PG)
			m[i] = 7;
	bad = bad ? bad : step(2, "mmap", ok);
	if (!ok)
		return bad;
	/* 3: pages 4-7 read-only, pages 8-11 unmapped. */
	bad = bad ? bad : step(3, "mprotect", sys3(10, m + 4 * PG, 4 * PG, 1) == 0 && m[5 * PG] == 7);
	bad = bad ? bad : step(4, "munmap", sys3(11, m + 8 * PG, 4 * PG, 0) == 0);
	/* 5: pages 0-1 replaced by fresh zero pages. */
	char *f = (char *)mmap_((long)m, 2 * PG, 3, 0x22 | 0x10, -1, 0);
	bad = bad ? bad : step(5, "mmap fixed", f == m && m[0] == 0 && m[PG] == 0 && m[2 * PG] == 7);
	/* 6: MAP_FIXED_NOREPLACE over pages 12-15, still mapped: EEXIST. */
	bad = bad ? bad : step(6, "mmap noreplace", mmap_((long)m + 12 * PG, 4 * PG, 3, 0x22 | 0x100000, -1, 0) == -EEXIST);
	/* 7: PROT_NONE, then its first page made read-write. */
	char *n = (char *)mmap_(0, 4 * PG, 0, 0x22, -1, 0);
	ok = (long)n > 0 && sys3(10, n, PG, 3) == 0;
	if (ok)
		n[10] = 5;
	bad = bad ? bad : step(7, "mmap none", ok && n[10] == 5);
	/* 8: a private view of page 0 of the program's own file. */
	long fd = sys3(2, "/proc/self/exe", 0, 0);
	char *v = fd >= 0 ? (char *)mmap_(0, PG, 1, 0x02, fd, 0) : (char *)-1;
	bad = bad ? bad : step(8, "mmap file", (long)v > 0 && v[0] == 0x7f && v[1] == 'E' && v[2] == 'L' && v[3] == 'F');
	if (fd >= 0)
		sys3(3, fd, 0, 0);
	/* 9: bad arguments: an unknown protection bit to mprotect, an unaligned munmap. */
	bad = bad ? bad : step(9, "bad arguments", sys3(10, n, PG, 0x1000) == -EINVAL && sys3(11, m + 1, PG, 0) == -EINVAL);
	/* 10: a shared anonymous mapping: the kernel's answer, whatever it is. */
	long s = mmap_(0, PG, 3, 0x21, -1, 0);
	puts_("shared -> ");
	putn(s < 0 ? s : 0);
	puts_("\n");
	return bad;
}

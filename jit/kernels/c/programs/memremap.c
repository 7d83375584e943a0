/* memremap: mremap as glibc's realloc uses it for big blocks, and as a
 * memory call that moves code: anonymous memory grown (moved where the
 * kernel chooses when the next page is taken), shrunk, grown in place,
 * moved to a fixed address; a private file view moved and grown (its new
 * page continues the file); code moved, then new code mapped where it
 * was (a translator that kept the old translation runs the moved code
 * at the old address); failures (nothing mapped, bad flags). One line a
 * step, for comparison with the native run. */
#include "rt.h"
#include "../jitcode.h"

#define PG 4096L
#define MREMAP_MAYMOVE 1
#define MREMAP_FIXED 2

static long mremap_(void *old, long oldn, long newn, long flags, void *to) {
	return sys6(25, (long)old, oldn, newn, flags, (long)to, 0);
}

/* sum adds the bytes of [p, p+n) with their positions. */
static long sum(const unsigned char *p, long n) {
	long s = 0;
	for (long i = 0; i < n; i++)
		s += (long)p[i] * (i % 251 + 1);
	return s;
}

int main(int argc, char **argv, char **envp) {
	/* Four pages and a guard page after them: growing must move. */
	unsigned char *a = rt_mmap(0, 5 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	rt_mprotect(a + 4 * PG, PG, PROT_NONE);
	for (long i = 0; i < 4 * PG; i++)
		a[i] = (unsigned char)(i * 13 + 5);
	long want = sum(a, 4 * PG), want2 = sum(a, 2 * PG);
	unsigned char *b = (unsigned char *)mremap_(a, 4 * PG, 64 * PG, MREMAP_MAYMOVE, 0);
	line("grow_moved", b != a && (long)b > 0);
	line("grow_kept", sum(b, 4 * PG) == want);
	long zero = 1;
	for (long i = 4 * PG; i < 64 * PG; i++)
		zero &= b[i] == 0;
	line("grow_zero", zero);
	line("shrink", mremap_(b, 64 * PG, 2 * PG, 0, 0) == (long)b);
	line("shrunk_kept", sum(b, 2 * PG) == want2);
	line("grow_in_place", mremap_(b, 2 * PG, 3 * PG, 0, 0) == (long)b);
	line("grown_in_place_zero", b[2 * PG] == 0 && b[3 * PG - 1] == 0);
	b[2 * PG] = 77;
	/* A fixed destination over a mapping of the program's. */
	unsigned char *c = rt_mmap(0, 8 * PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	long r = mremap_(b, 3 * PG, 4 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, c + 2 * PG);
	line("fixed", r == (long)(c + 2 * PG));
	line("fixed_kept", c[2 * PG + 1] == (unsigned char)(13 + 5) && c[4 * PG] == 77 && c[5 * PG] == 0);
	line("fixed_old_gone", rt_mmap(b, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | 0x100000 /* MAP_FIXED_NOREPLACE */, -1, 0) == (void *)b);
	rt_munmap(b, PG);
	line("fixed_onto_itself", mremap_(c + 2 * PG, 4 * PG, 4 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, c + 3 * PG));

	/* This program's own file, privately: grown, its new page the
	 * file's next one. */
	if (argc > 1) {
		int fd = (int)sys3(2, argv[1], 0, 0);
		unsigned char *v = rt_mmap(0, PG, PROT_READ, MAP_PRIVATE, fd, 0);
		unsigned char *w = (unsigned char *)mremap_(v, PG, 2 * PG, MREMAP_MAYMOVE, 0);
		line("view_grown", (long)w > 0);
		line("view_elf", w[0] == 0x7f && w[1] == 'E');
		unsigned char page1[16];
		sys6(17, fd, (long)page1, 16, PG, 0, 0); /* pread64 */
		long same = 1;
		for (int i = 0; i < 16; i++)
			same &= w[PG + i] == page1[i];
		line("view_continues_file", same);
		rt_munmap(w, 2 * PG);
		rt_close(fd);
	}

	/* Code moved. */
	unsigned char *code = rt_mmap(0, PG, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	jit_mov_ret(code, 7);
	call_print(code);
	unsigned char *dst = rt_mmap(0, PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char *moved = (unsigned char *)mremap_(code, PG, PG, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	line("code_moved", moved == dst);
	call_print(moved);
	unsigned char *again = rt_mmap(code, PG, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	jit_mov_ret(again, 9);
	call_print(again);
	call_print(moved);

	/* Failures. */
	line("unmapped", mremap_(code + 64 * PG, PG, 2 * PG, MREMAP_MAYMOVE, 0));
	line("bad_flags", mremap_(moved, PG, 2 * PG, 8 | MREMAP_MAYMOVE, 0));
	line("fixed_without_maymove", mremap_(moved, PG, 2 * PG, MREMAP_FIXED, c));
	line("zero_new", mremap_(moved, PG, 0, MREMAP_MAYMOVE, 0));
	line("unaligned", mremap_(moved + 1, PG, 2 * PG, MREMAP_MAYMOVE, 0));
	return 5;
}

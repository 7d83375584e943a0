/* vet: tries to map MAP_FIXED over the address given as argv[1] (reachvm
 * passes its vmcode), prints the result, and keeps running; with argv[2]
 * "tls" or "thread" it then asks for a TLS set-up or a thread reachvm
 * refuses, with "madvise ADDR" it drops the page at ADDR
 * (MADV_DONTNEED). */
#include "rt.h"

int main(int argc, char **argv, char **envp) {
	if (argc < 2)
		return 2;
	u64 addr = atohex(argv[1]);
	long r = sys6(9, (long)addr, 4096, 3, 0x22 | 0x10, -1, 0);
	puts_("mmap fixed at ");
	puthex(addr);
	puts_(" -> ");
	putn(r);
	puts_("\n");
	r = sys3(11, addr, 4096, 0);
	puts_("munmap -> ");
	putn(r);
	puts_("\nstill running\n");
	if (argc > 2 && streq(argv[2], "tls"))
		sys3(158, 0x1002, 0x1000, 0); /* arch_prctl(ARCH_SET_FS) */
	if (argc > 3 && streq(argv[2], "madvise")) {
		/* madvise(MADV_DONTNEED) over memory that is not the
		 * program's: it would zero it. */
		r = sys3(28, atohex(argv[3]), 4096, 4);
		puts_("madvise -> ");
		putn(r);
		puts_("\n");
	}
	if (argc > 2 && streq(argv[2], "thread"))
		/* clone: a thread with a file table of its own (no CLONE_FILES
		 * or CLONE_FS), which reachvm's threads cannot have. */
		sys6(56, 0x00010900, 0, 0, 0, 0, 0);
	return 7;
}

/* fsbase: the program's own FS. With "loads N" it sets FS and makes N
 * pairs of FS-relative loads. With "exits N" it sets FS and makes N
 * getppid calls, each an exit from the cache. With "unset" it reads %fs:0 before
 * setting FS, which natively faults (FS base 0). Otherwise it sets FS
 * with arch_prctl, reads and writes through it across system calls and a
 * signal handler, reads it back with ARCH_GET_FS, and checks the kernel's
 * errors (EPERM for a non-canonical base, EFAULT for a bad pointer). */
#include "rt.h"

#define ARCH_SET_FS 0x1002
#define ARCH_GET_FS 0x1003

static u64 block[4] = {0, 0x1111, 0x2222, 0x3333};
static u64 inhandler;

static u64 fsload(long off) {
	u64 v;
	__asm__ volatile("movq %%fs:(%1), %0" : "=r"(v) : "r"(off) : "memory");
	return v;
}

static void fsstore(long off, u64 v) { __asm__ volatile("movq %0, %%fs:(%1)" : : "r"(v), "r"(off) : "memory"); }

static void handler(int sig, rt_siginfo *si, void *uc) {
	(void)sig, (void)si, (void)uc;
	inhandler = fsload(16);
}

int main(int argc, char **argv, char **envp) {
	(void)envp;
	if (argc > 1 && streq(argv[1], "unset")) {
		puts_("reading %fs:0 before setting FS\n");
		putn(fsload(0));
		puts_("\nnot reached natively\n");
		return 3;
	}
	block[0] = (u64)block;
	if (argc > 2 && streq(argv[1], "loads")) {
		sys3(158, ARCH_SET_FS, block, 0);
		u64 sum = 0;
		for (long i = atol_(argv[2]); i > 0; i--)
			sum += fsload(8) + fsload(16);
		return sum == 0;
	}
	if (argc > 2 && streq(argv[1], "exits")) {
		sys3(158, ARCH_SET_FS, block, 0);
		for (long i = atol_(argv[2]); i > 0; i--)
			sys3(110, 0, 0, 0);
		return fsload(8) == 0x1111 ? 0 : 1;
	}
	puts_("set: ");
	putn(sys3(158, ARCH_SET_FS, block, 0));
	puts_("\nfs:8 = ");
	puthex(fsload(8));
	fsstore(24, 0x4444);
	puts_("\nblock[3] = ");
	puthex(block[3]);
	/* A system call and a signal in between keep it. */
	sys3(39, 0, 0, 0);
	rt_handle(SIGUSR1, handler, SA_SIGINFO, 0);
	sys3(62, sys3(39, 0, 0, 0), SIGUSR1, 0);
	puts_("\nin the handler fs:16 = ");
	puthex(inhandler);
	u64 got = 0;
	puts_("\nget: ");
	putn(sys3(158, ARCH_GET_FS, &got, 0));
	puts_(got == (u64)block ? " (the base set)" : " (another base)");
	puts_("\nfs:0 is the base: ");
	putn(fsload(0) == (u64)block);
	puts_("\nnon-canonical: ");
	putn(sys3(158, ARCH_SET_FS, 0x800000000000ul, 0));
	puts_("\nbad pointer: ");
	putn(sys3(158, ARCH_GET_FS, 8, 0));
	puts_("\nstill: ");
	puthex(fsload(8));
	puts_("\n");
	return 0;
}

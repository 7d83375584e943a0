/* sigrepair: a SIGSEGV handler that repairs the fault and returns, so
 * that the faulting instruction runs again and succeeds. argv[1]:
 *
 *   map  a store to a PROT_NONE page: the handler makes it writable
 *   reg  a load through rbx holding a bad address: the handler points
 *        uc_mcontext's rbx at good memory
 */
#include "rt.h"

static char *page;
static volatile long good = 1234;
static int faults;
static long addr_off;

static void repair_map(int sig, rt_siginfo *si, void *uc) {
	faults++;
	addr_off = (char *)si->u.addr - page;
	rt_mprotect(page, 4096, PROT_READ | PROT_WRITE);
}

static void repair_reg(int sig, rt_siginfo *si, void *ucv) {
	rt_ucontext *uc = ucv;
	faults++;
	addr_off = (long)si->u.addr;
	uc->gregs[REG_RBX] = (u64)&good;
}

int main(int argc, char **argv, char **envp) {
	if (argc < 2)
		return 2;
	if (streq(argv[1], "map")) {
		page = rt_mmap(0, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		rt_handle(SIGSEGV, repair_map, 0, 0);
		((volatile int *)page)[5] = 42;
		say("value: ", ((volatile int *)page)[5]);
		((volatile int *)page)[6] = 43;
		say("faults: ", faults);
		say("fault address - page: ", addr_off);
	} else if (streq(argv[1], "reg")) {
		rt_handle(SIGSEGV, repair_reg, 0, 0);
		long v, p = 0x18;
		__asm__ volatile("mov (%%rbx), %%rax" : "=a"(v), "+b"(p) : : "memory");
		say("value: ", v);
		puts_(p == (long)&good ? "rbx repaired: yes\n" : "rbx repaired: no\n");
		say("faults: ", faults);
		say("fault address: ", addr_off);
	} else {
		return 2;
	}
	return 0;
}

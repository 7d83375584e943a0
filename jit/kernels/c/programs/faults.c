/*
 * Faults and signals with no handler, one per argument: the process dies
 * of the signal natively, and under reachvm run the same. Each faulting
 * instruction sits at a global label (fault_NAME) so that a test can
 * check the application PC reachvm reports against the symbol.
 */
#include "rt.h"

static long inc(long x) { return x + 1; }
static long dec(long x) { return x - 1; }
static long (*volatile table[2])(long) = {inc, dec};

static int eq(const char *a, const char *b) {
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

int main(int argc, char **argv, char **envp) {
	if (argc < 2)
		return 2;
	const char *c = argv[1];
	puts_(c);
	puts_("\n");
	if (eq(c, "null"))
		__asm__ volatile("xor %%eax, %%eax\n.globl fault_null\nfault_null: movl $1, (%%rax)" ::: "rax", "memory");
	else if (eq(c, "div"))
		__asm__ volatile("mov $5, %%eax\nxor %%edx, %%edx\nxor %%ecx, %%ecx\n.globl fault_div\nfault_div: div %%ecx" ::: "rax", "rcx", "rdx");
	else if (eq(c, "ud2"))
		__asm__ volatile(".globl fault_ud2\nfault_ud2: ud2");
	else if (eq(c, "int3"))
		__asm__ volatile(".globl fault_int3\nfault_int3: int3\n.globl fault_int3_end\nfault_int3_end:");
	else if (eq(c, "invalid"))
		__asm__ volatile(".globl fault_invalid\nfault_invalid: .byte 0x06");
	else if (eq(c, "hlt"))
		__asm__ volatile(".globl fault_hlt\nfault_hlt: hlt");
	else if (eq(c, "afterkill")) {
		/* A system call reached by a taken branch, then a trap right
		 * after it. */
		__asm__ volatile("jmp 1f\n1: mov $39, %%eax\nsyscall\n.globl fault_afterkill\nfault_afterkill: ud2" ::: "rax", "rcx", "r11");
	} else if (eq(c, "usr1"))
		sys3(62, sys3(39, 0, 0, 0), 10, 0);
	else if (eq(c, "alarm")) {
		long it[4] = {0, 0, 0, 20000};
		sys3(38, 0, it, 0);
		volatile unsigned long x = 0;
		for (;;)
			x++;
	} else if (eq(c, "alarmcalls")) {
		/* Most of the time in indirect calls and returns, where the
		 * translator's inserted code runs. */
		long it[4] = {0, 0, 0, 2000};
		sys3(38, 0, it, 0);
		long x = 0;
		for (unsigned long i = 0;; i++)
			x = table[i & 1](x);
	} else if (eq(c, "alarmexits")) {
		/* Most of the time going in and out of the cache. */
		long it[4] = {0, 0, 0, 2000};
		sys3(38, 0, it, 0);
		for (;;)
			sys3(39, 0, 0, 0);
	} else if (eq(c, "jumpnull"))
		__asm__ volatile("xor %%eax, %%eax\njmp *%%rax" ::: "rax");
	puts_("still alive\n");
	return 0;
}

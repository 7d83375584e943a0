/* blockstart: blocks whose first instruction is a system call or an
 * instruction that traps, the shapes where an exit's target is its own
 * block's start. argv[1] picks one:
 *
 *   int3, ud2, bad  that instruction (bad: 0x06, invalid in 64-bit mode)
 *                   right after a write: the block after the system call
 *                   starts with it; the process dies of SIGTRAP, SIGILL,
 *                   SIGILL
 *   twice           two system calls in a row (a write, then getpid)
 *   branch          a write reached by a taken conditional branch, and a
 *                   loop whose head is a write
 */
#include "rt.h"

static const char before[] = "before\n";

int main(int argc, char **argv, char **envp) {
	if (argc < 2)
		return 2;
	const char *m = argv[1];
	long n = sizeof before - 1, r;
	if (streq(m, "int3")) {
		__asm__ volatile("syscall\n\tint3" : "=a"(r) : "a"(1), "D"(1), "S"(before), "d"(n) : "rcx", "r11", "memory");
	} else if (streq(m, "ud2")) {
		__asm__ volatile("syscall\n\tud2" : "=a"(r) : "a"(1), "D"(1), "S"(before), "d"(n) : "rcx", "r11", "memory");
	} else if (streq(m, "bad")) {
		__asm__ volatile("syscall\n\t.byte 0x06" : "=a"(r) : "a"(1), "D"(1), "S"(before), "d"(n) : "rcx", "r11", "memory");
	} else if (streq(m, "twice")) {
		/* A write of 39 bytes returns 39, which the next syscall takes
		 * for its number: getpid. */
		static const char line[] = "two system calls in a row, then getpid\n";
		__asm__ volatile("syscall\n\tsyscall" : "=a"(r) : "a"(1), "D"(1), "S"(line), "d"(sizeof line - 1) : "rcx", "r11", "memory");
		puts_(r == sys3(39, 0, 0, 0) ? "getpid after the write\n" : "not getpid\n");
	} else if (streq(m, "branch")) {
		/* The write is reached by a taken jz only. */
		__asm__ volatile("test %%eax, %%eax\n\tmov $1, %%eax\n\tjz 1f\n\tmov $60, %%eax\n\txor %%edi, %%edi\n1:\tsyscall"
				 : "=a"(r)
				 : "a"(0), "D"(1), "S"(before), "d"(n)
				 : "rcx", "r11", "memory");
		/* A loop whose head is the write: three lines. */
		long left = 3;
		__asm__ volatile("mov $1, %%eax\n1:\tsyscall\n\tmov $1, %%eax\n\tdec %%rbx\n\tjnz 1b"
				 : "+b"(left), "=a"(r)
				 : "D"(1), "S"(before), "d"(n)
				 : "rcx", "r11", "memory");
		puts_("branch done\n");
	} else {
		return 2;
	}
	return 0;
}

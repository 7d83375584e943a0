/*
 * opcodes_loop: a freestanding program (no libc, its own _start) for
 * the opcodes client's test. Every instruction it runs is its own: a
 * loop of LOOPS iterations of bswap, rol, dec and jne (gcc's jnz), then
 * exit_group(0). The test counts each of the four exactly.
 */
void _start(void) {
	long n = LOOPS, x = 1;
	__asm__ volatile(
		"1:\n\t"
		"bswap %1\n\t"
		"rol $3, %1\n\t"
		"dec %0\n\t"
		"jnz 1b"
		: "+r"(n), "+r"(x)
		:
		: "cc");
	__asm__ volatile("syscall" : : "a"(231), "D"(0) : "rcx", "r11", "memory");
	__builtin_unreachable();
}

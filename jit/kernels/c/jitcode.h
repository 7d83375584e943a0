/*
 * Machine code that the self-modifying test programs (programs/smc_*.c)
 * and the smc_jit kernel write at run time, byte by byte through a
 * volatile pointer: each byte is a store of its own, as a JIT's would
 * be, which the compiler may not merge or drop. Shared by the programs
 * and the kernels, so it needs neither rt.h nor kernels.h.
 */

/* jit_imm32 writes v at p, little-endian. */
static inline void jit_imm32(volatile unsigned char *p, int v) {
	p[0] = v;
	p[1] = v >> 8;
	p[2] = v >> 16;
	p[3] = v >> 24;
}

/* jit_mov_ret writes `mov eax, v; ret` (6 bytes) at p. */
static inline void jit_mov_ret(volatile unsigned char *p, int v) {
	p[0] = 0xb8;
	jit_imm32(p + 1, v);
	p[5] = 0xc3;
}

/* jit_lea_ret writes `lea eax, [rdi+k]; ret` (7 bytes) at p. */
static inline void jit_lea_ret(volatile unsigned char *p, int k) {
	p[0] = 0x8d;
	p[1] = 0x87;
	jit_imm32(p + 2, k);
	p[6] = 0xc3;
}

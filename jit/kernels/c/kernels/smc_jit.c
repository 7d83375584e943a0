/* smc_jit: a JIT in miniature, for the benchmark of code-write detection
 * (not one of the kernel suite). code is read-write-execute memory the
 * caller provides, holding nfn functions 16 bytes apart, each
 * `lea eax, [rdi+k]; ret`. One call rewrites `rewrite` of them (functions
 * 0, stride, 2*stride, ...) with a constant that depends on seed, then
 * calls every function `calls` times and returns the sum. */
#include "kernels.h"

static void emit(volatile u8 *code, long i, int k) {
	volatile u8 *f = code + 16 * i;
	f[0] = 0x8d;
	f[1] = 0x87;
	f[2] = k;
	f[3] = k >> 8;
	f[4] = k >> 16;
	f[5] = k >> 24;
	f[6] = 0xc3;
}

EXPORT long smc_jit(u8 *code, long nfn, long rewrite, long stride, long calls, long seed) {
	for (long i = 0; i < rewrite; i++)
		emit(code, i * stride, (int)(i * stride + seed));
	long sum = 0;
	for (long c = 0; c < calls; c++)
		for (long i = 0; i < nfn; i++)
			sum += ((int (*)(long))(code + 16 * i))(c);
	return sum;
}

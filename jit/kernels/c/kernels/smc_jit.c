/* smc_jit: a JIT in miniature, for the benchmark of code-write detection
 * (not one of the kernel suite). code is read-write-execute memory the
 * caller provides, holding nfn functions 16 bytes apart, each
 * `lea eax, [rdi+k]; ret`. One call rewrites `rewrite` of them (functions
 * 0, stride, 2*stride, ...) with a constant that depends on seed, then
 * calls every function `calls` times and returns the sum. */
#include "kernels.h"
#include "../jitcode.h"

EXPORT long smc_jit(u8 *code, long nfn, long rewrite, long stride, long calls, long seed) {
	for (long i = 0; i < rewrite; i++)
		jit_lea_ret(code + 16 * (i * stride), (int)(i * stride + seed));
	long sum = 0;
	for (long c = 0; c < calls; c++)
		for (long i = 0; i < nfn; i++)
			sum += ((int (*)(long))(code + 16 * i))(c);
	return sum;
}

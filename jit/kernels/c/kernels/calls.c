/* Micro-benchmarks of the cost of a call and a return: a direct call and
 * a call through a pointer to one function (a monomorphic callback), in
 * loops whose callee is too small to hide anything. Not part of the
 * kernel suite's geometric mean: they measure the translator's per-call
 * overhead, which the suite's kernels pay in proportion to their calls. */
#include "kernels.h"

__attribute__((noinline)) static long step(long x, long i) { return x * 3 + i; }
static long (*volatile stepp)(long, long) = step;

EXPORT long k_dcalls(long n) {
	long acc = 1;
	for (long i = 0; i < n; i++)
		acc = step(acc, i);
	return acc;
}

EXPORT long k_icalls(long n) {
	long acc = 1;
	for (long i = 0; i < n; i++)
		acc = stepp(acc, i);
	return acc;
}

/* A polymorphic return: one function called through a pointer from five
 * places in turn, so that its return goes back to a different caller
 * each time, as free's and memcpy's do in a real program. The calls do
 * not wait for one another's results: what a return costs beyond the
 * native one shows, rather than hiding behind a chain of arithmetic. */
__attribute__((noinline)) static long mix(long x, long i) { return (x ^ i) * 5 + 1; }
static long (*volatile mixp)(long, long) = mix;

EXPORT long k_rets(long n) {
	long acc = 1;
	for (long i = 0; i < n; i++) {
		acc += mixp(i, 1);
		acc += mixp(i, 2);
		acc += mixp(i, 3);
		acc += mixp(i, 4);
		acc += mixp(i, 5);
	}
	return acc;
}

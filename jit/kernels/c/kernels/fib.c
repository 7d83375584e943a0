/* Recursion: calls and returns dominate (DynamoRIO's worst kernel, 1.66x). */
#include "kernels.h"

static long fib(long n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

/* Mutual recursion through two call sites each. */
static long odd(long n);
static long even(long n) { return n == 0 ? 1 : odd(n - 1); }
static long odd(long n) { return n == 0 ? 0 : even(n - 1); }

EXPORT long k_fib(long n) {
	long s = fib(n);
	for (long i = 0; i < 64; i++)
		s += even(i + n);
	return s;
}

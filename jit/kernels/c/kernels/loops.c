/* Loops: nested counted loops over integer matrices in .bss. */
#include "kernels.h"

#define N 48
static long a[N][N], b[N][N], c[N][N];

EXPORT long k_loops(long n) {
	for (long i = 0; i < N; i++)
		for (long j = 0; j < N; j++) {
			a[i][j] = (i * 7 + j * 3) % 17 - 8;
			b[i][j] = (i * 5 + j * 11) % 13 - 6;
		}
	long s = 0;
	for (long r = 0; r < n; r++) {
		for (long i = 0; i < N; i++)
			for (long j = 0; j < N; j++) {
				long t = 0;
				for (long k = 0; k < N; k++)
					t += a[i][k] * b[k][j];
				c[i][j] = t;
			}
		a[r % N][(r * 7) % N] += c[(r * 3) % N][r % N] & 3;
		s += c[r % N][(r + 1) % N];
	}
	/* A sieve, for branches that depend on data. */
	static u8 composite[1 << 16];
	long primes = 0;
	for (long i = 2; i < (long)sizeof composite; i++) {
		if (composite[i])
			continue;
		primes++;
		for (long j = i * i; j < (long)sizeof composite; j += i)
			composite[j] = 1;
	}
	return s * 1000003 + primes;
}

/* Large stacks: recursion with 64 KiB frames (3 MiB deep at n = 48),
 * beyond any Go goroutine or g0 stack: the application needs its own. */
#include "kernels.h"

static long deep(long n, long seed) {
	volatile u8 frame[65536];
	for (long i = 0; i < (long)sizeof frame; i += 512)
		frame[i] = (u8)(seed + i);
	long below = n > 0 ? deep(n - 1, seed * 33 + n) : 0;
	long s = below;
	for (long i = 0; i < (long)sizeof frame; i += 512)
		s += frame[i];
	return s;
}

EXPORT long k_bigstack(long n) { return deep(n < 48 ? n : 48, n); }

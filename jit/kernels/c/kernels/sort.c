/* Sorting with a comparator: recursion and an indirect call per
 * comparison. */
#include "kernels.h"

typedef int (*cmp)(const void *, const void *);

static void swap(long *a, long *b) { long t = *a; *a = *b; *b = t; }

static void qs(long *v, long lo, long hi, cmp c) {
	while (lo < hi) {
		long p = v[(lo + hi) / 2], i = lo, j = hi;
		while (i <= j) {
			while (c(&v[i], &p) < 0) i++;
			while (c(&v[j], &p) > 0) j--;
			if (i <= j) swap(&v[i++], &v[j--]);
		}
		if (j - lo < hi - i) { qs(v, lo, j, c); lo = i; }
		else { qs(v, i, hi, c); hi = j; }
	}
}

static int up(const void *a, const void *b) {
	long x = *(const long *)a, y = *(const long *)b;
	return (x > y) - (x < y);
}
static int down(const void *a, const void *b) { return up(b, a); }

static long v[4096];

EXPORT long k_sort(long n) {
	u64 x = 88172645463325252ull;
	long s = 0;
	for (long r = 0; r < n; r++) {
		long len = 1024 + (r & 1023) * 3;
		for (long i = 0; i < len; i++) {
			x ^= x << 13; x ^= x >> 7; x ^= x << 17;
			v[i] = (long)(x % 100000);
		}
		qs(v, 0, len - 1, r & 1 ? down : up);
		s = s * 7 + v[0] + v[len / 2] * 3 + v[len - 1] * 5;
	}
	return s;
}

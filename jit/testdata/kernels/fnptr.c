/* Function pointers: indirect calls to several targets from one site. */
#include "kernels.h"

typedef long (*op)(long, long);
static long add(long x, long y) { return x + y; }
static long sub(long x, long y) { return x - y; }
static long mul(long x, long y) { return x * (y | 1); }
static long xr(long x, long y) { return x ^ (y << 3); }
static long mix(long x, long y) { return (x << 5) + (x >> 3) + y; }
static long rot(long x, long y) { return (long)(((u64)x << 7) | ((u64)x >> 57)) + y; }

/* volatile: the calls must go through the table. */
static op volatile ops[8] = {add, sub, mul, xr, mix, rot, add, mix};

struct shape {
	long (*area)(const struct shape *);
	long w, h;
};
static long rect(const struct shape *s) { return s->w * s->h; }
static long tri(const struct shape *s) { return s->w * s->h / 2; }

EXPORT long k_fnptr(long n) {
	long acc = 1;
	for (long i = 0; i < n; i++)
		acc = ops[(i ^ (i >> 3)) & 7](acc, i);
	struct shape sh[4] = {{rect, 3, 4}, {tri, 5, 6}, {rect, 7, 8}, {tri, 9, 10}};
	for (long i = 0; i < n / 4; i++)
		acc += sh[i & 3].area(&sh[i & 3]);
	return acc;
}

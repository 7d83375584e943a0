/* Function pointers: a table of callbacks called from one site with a
 * data-dependent index (polymorphic), and a small "class" hierarchy
 * dispatched through function pointers in structs. Each callback does a
 * little work, as callbacks do; k_calls measures bare call overhead. */
#include "kernels.h"

typedef u64 (*op)(u64, u64);
static u64 mixa(u64 x, u64 y) { x ^= y * 0x9e3779b97f4a7c15ull; return (x << 13 | x >> 51) + y; }
static u64 mixb(u64 x, u64 y) { x += y; x ^= x >> 29; return x * 0xbf58476d1ce4e5b9ull; }
static u64 mixc(u64 x, u64 y) { x = (x ^ (x >> 31)) * 0x94d049bb133111ebull; return x + (y | 1); }
static u64 mixd(u64 x, u64 y) { u64 t = x * 5 + y; return t ^ (t >> 17) ^ (y << 7); }
static u64 mixe(u64 x, u64 y) { return (x + y) * (y | 3) ^ (x >> 11); }
static u64 mixf(u64 x, u64 y) { x -= y ^ 0x5555555555555555ull; return x * 33 + (x >> 5); }

/* volatile: the calls must go through the table. */
static op volatile ops[8] = {mixa, mixb, mixc, mixd, mixe, mixf, mixa, mixc};

struct shape {
	long (*area)(const struct shape *);
	long (*perimeter)(const struct shape *);
	long w, h;
};
static long rect_area(const struct shape *s) { return s->w * s->h; }
static long rect_perim(const struct shape *s) { return 2 * (s->w + s->h); }
static long tri_area(const struct shape *s) { return s->w * s->h / 2; }
static long tri_perim(const struct shape *s) { return s->w + s->h + (s->w > s->h ? s->w : s->h); }

EXPORT long k_fnptr(long n) {
	u64 acc = 1;
	for (long i = 0; i < n; i++)
		acc = ops[(i ^ (i >> 3)) & 7](acc, (u64)i);
	struct shape sh[4] = {{rect_area, rect_perim, 3, 4}, {tri_area, tri_perim, 5, 6},
			      {rect_area, rect_perim, 7, 8}, {tri_area, tri_perim, 9, 10}};
	long s = 0;
	for (long i = 0; i < n / 4; i++) {
		struct shape *p = &sh[i & 3];
		s += p->area(p) * 3 + p->perimeter(p);
		p->w = (p->w * 7 + i) & 63;
	}
	return (long)acc + s;
}

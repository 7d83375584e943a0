/* SSE2: double arithmetic (scalar SSE2 by default on x86-64) and packed
 * intrinsics, with constants loaded RIP-relative from .rodata. */
#include <emmintrin.h>
#include "kernels.h"

#define W 64
static double xs[W], ys[W];

static long mandel(long n) {
	long total = 0;
	for (long py = 0; py < 24; py++)
		for (long px = 0; px < 48; px++) {
			double cx = -2.0 + px * (3.0 / 48), cy = -1.2 + py * (2.4 / 24);
			double x = 0, y = 0;
			long it = 0;
			while (it < n && x * x + y * y < 4.0) {
				double t = x * x - y * y + cx;
				y = 2 * x * y + cy;
				x = t;
				it++;
			}
			total += it;
		}
	return total;
}

EXPORT long k_sse2(long n) {
	for (long i = 0; i < W; i++) {
		xs[i] = i * 0.5 + 1;
		ys[i] = 1.0 / (i + 1);
	}
	__m128d acc = _mm_setzero_pd();
	for (long r = 0; r < n; r++)
		for (long i = 0; i < W; i += 2) {
			__m128d x = _mm_load_pd(&xs[i]), y = _mm_load_pd(&ys[i]);
			acc = _mm_add_pd(acc, _mm_mul_pd(x, y));
			acc = _mm_mul_pd(acc, _mm_set1_pd(0.999));
		}
	double out[2];
	_mm_storeu_pd(out, acc);
	__m128i v = _mm_set_epi32(1, 2, 3, 4);
	for (long r = 0; r < n; r++)
		v = _mm_add_epi32(_mm_shuffle_epi32(v, 0x1b), _mm_set1_epi32((int)r));
	return (long)((out[0] + out[1]) * 1e6) + _mm_cvtsi128_si32(v) + mandel(n / 4 + 8);
}

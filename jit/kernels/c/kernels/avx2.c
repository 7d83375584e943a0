/* AVX2 (VEX-encoded, with RIP-relative VEX operands: x86asm's gap): run
 * only where the processor has AVX2. */
#include <immintrin.h>
#include "kernels.h"

static const int weights[8] = {1, 2, 3, 4, 5, 6, 7, 8};
static int data[256];

__attribute__((target("avx2"))) EXPORT long k_avx2(long n) {
	for (int i = 0; i < 256; i++)
		data[i] = i * 3 - 100;
	__m256i acc = _mm256_setzero_si256();
	__m256i w = _mm256_loadu_si256((const __m256i *)weights);
	for (long r = 0; r < n; r++)
		for (int i = 0; i < 256; i += 8) {
			__m256i x = _mm256_loadu_si256((const __m256i *)&data[i]);
			acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(x, w));
			acc = _mm256_xor_si256(acc, _mm256_set1_epi32((int)r));
		}
	int out[8];
	_mm256_storeu_si256((__m256i *)out, acc);
	long s = 0;
	for (int i = 0; i < 8; i++)
		s = s * 131 + out[i];
	return s;
}

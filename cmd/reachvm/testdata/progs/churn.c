// churn: malloc, calloc, realloc and free of small and large blocks (the
// large ones come from mmap), every block filled and checked before it
// is freed.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 2048

static uint64_t seed = 88172645463325252ull;

static uint64_t next(void) {
	seed ^= seed << 13;
	seed ^= seed >> 7;
	seed ^= seed << 17;
	return seed;
}

static unsigned char *blk[SLOTS];
static size_t len[SLOTS];

static size_t pick(void) {
	uint64_t r = next();
	switch (r % 64) {
	case 0:
		return 128 * 1024 + r % (512 * 1024); // past the mmap threshold
	case 1: case 2:
		return 4096 + r % 60000;
	default:
		return 1 + r % 512;
	}
}

static void fill(int i) {
	for (size_t j = 0; j < len[i]; j += 61)
		blk[i][j] = (unsigned char)(i + j);
}

static int check(int i) {
	for (size_t j = 0; j < len[i]; j += 61)
		if (blk[i][j] != (unsigned char)(i + j))
			return 0;
	return 1;
}

int main(void) {
	unsigned long ops = 0, bad = 0, bytes = 0;
	for (int round = 0; round < 100000; round++) {
		int i = next() % SLOTS;
		if (blk[i]) {
			bad += !check(i);
			if (next() % 4 == 0) {
				size_t n = pick();
				unsigned char *p = realloc(blk[i], n);
				if (!p)
					return 2;
				size_t keep = n < len[i] ? n : len[i];
				blk[i] = p;
				for (size_t j = 0; j < keep; j += 61)
					bad += p[j] != (unsigned char)(i + j);
				len[i] = n;
				fill(i);
			} else {
				free(blk[i]);
				blk[i] = NULL;
			}
		} else {
			len[i] = pick();
			if (next() % 3 == 0) {
				blk[i] = calloc(1, len[i]);
				if (blk[i])
					for (size_t j = 0; j < len[i]; j += 97)
						bad += blk[i][j] != 0;
			} else {
				blk[i] = malloc(len[i]);
			}
			if (!blk[i])
				return 2;
			fill(i);
			bytes += len[i];
		}
		ops++;
	}
	for (int i = 0; i < SLOTS; i++) {
		if (blk[i]) {
			bad += !check(i);
			free(blk[i]);
		}
	}
	printf("churn: %lu operations, %lu bytes allocated, %lu bad\n", ops, bytes, bad);
	return bad != 0;
}

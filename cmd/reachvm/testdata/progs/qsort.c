// qsort: glibc's qsort (a merge sort through a callback, so indirect
// calls by the million) on integers and on strings, then bsearch.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 200000

static int cmpint(const void *a, const void *b) {
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

static int cmpstr(const void *a, const void *b) {
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void) {
	static int v[N];
	uint32_t s = 12345;
	for (int i = 0; i < N; i++) {
		s = s * 1103515245u + 12345u;
		v[i] = (int)(s >> 1) % 1000003 - 500000;
	}
	qsort(v, N, sizeof v[0], cmpint);
	unsigned long sum = 0, unsorted = 0;
	for (int i = 0; i < N; i++) {
		sum = sum * 31 + (unsigned)v[i];
		unsorted += i > 0 && v[i - 1] > v[i];
	}
	printf("ints: min %d max %d hash %lu unsorted %lu\n", v[0], v[N - 1], sum, unsorted);
	int key = v[N / 3], *found = bsearch(&key, v, N, sizeof v[0], cmpint);
	printf("bsearch %d: %s\n", key, found && *found == key ? "found" : "missing");

	static char words[5000][12];
	static char *w[5000];
	for (int i = 0; i < 5000; i++) {
		s = s * 1103515245u + 12345u;
		snprintf(words[i], sizeof words[i], "w%08x", s);
		w[i] = words[i];
	}
	qsort(w, 5000, sizeof w[0], cmpstr);
	printf("strings: first %s last %s middle %s\n", w[0], w[4999], w[2500]);
	return 0;
}

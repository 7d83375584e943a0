/* preload: an LD_PRELOAD counter of the allocation calls a program makes
 * through the dynamic linker (its own and other libraries', not the C
 * library's calls to itself), written at exit to the file in
 * PRELOAD_OUT as "mallocs callocs reallocs frees". The wrap client must
 * see at least these. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

static long mallocs, callocs, reallocs, frees;
static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static char early[4096];
static size_t early_used;

void *malloc(size_t n) {
	if (!real_malloc)
		real_malloc = dlsym(RTLD_NEXT, "malloc");
	mallocs++;
	return real_malloc(n);
}

void *calloc(size_t n, size_t s) {
	if (!real_calloc) {
		/* dlsym may calloc: serve it from a static buffer. */
		static int busy;
		if (busy) {
			void *p = early + early_used;
			early_used += (n * s + 15) & ~15UL;
			return p;
		}
		busy = 1;
		real_calloc = dlsym(RTLD_NEXT, "calloc");
		busy = 0;
	}
	callocs++;
	return real_calloc(n, s);
}

void *realloc(void *p, size_t n) {
	if (!real_realloc)
		real_realloc = dlsym(RTLD_NEXT, "realloc");
	reallocs++;
	return real_realloc(p, n);
}

void free(void *p) {
	if ((char *)p >= early && (char *)p < early + sizeof early)
		return;
	if (!real_free)
		real_free = dlsym(RTLD_NEXT, "free");
	frees++;
	real_free(p);
}

__attribute__((destructor)) static void report(void) {
	const char *out = getenv("PRELOAD_OUT");
	FILE *f = out ? fopen(out, "w") : 0;
	if (f) {
		fprintf(f, "%ld %ld %ld %ld\n", mallocs, callocs, reallocs, frees);
		fclose(f);
	}
}

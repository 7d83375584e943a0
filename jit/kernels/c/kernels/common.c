/* memset and memcpy, which gcc emits calls to for large copies and
 * zeroing loops. Built with -fno-tree-loop-distribute-patterns so that gcc
 * does not turn these loops back into calls to themselves. */
#include "kernels.h"

void *memset(void *s, int c, unsigned long n) {
	u8 *p = s;
	while (n--)
		*p++ = (u8)c;
	return s;
}

void *memcpy(void *d, const void *s, unsigned long n) {
	u8 *p = d;
	const u8 *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

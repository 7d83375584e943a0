/* memops: known loads and stores for the memtrace client's test. It
 * writes the addresses of its arrays to the file argv[1], then: 1000
 * loads of src and 1000 stores to dst, one element each; a rep movsb of
 * 4096 bytes from src to dst (4096 one-byte loads and stores); and 100
 * read-and-write adds to src[0]; all of it argv[2] times (once by
 * default). */
#include <stdio.h>
#include <stdlib.h>

long src[1000], dst[1000];

int main(int argc, char **argv) {
	FILE *f = fopen(argv[1], "w");
	if (!f)
		return 1;
	fprintf(f, "%p %p\n", (void *)src, (void *)dst);
	fclose(f);
	int reps = argc > 2 ? atoi(argv[2]) : 1;
	for (int r = 0; r < reps; r++) {
	for (int i = 0; i < 1000; i++)
		__asm__ volatile("mov (%1,%2,8), %%rax\n\tmov %%rax, (%0,%2,8)" ::"r"(dst), "r"(src), "r"((long)i) : "rax", "memory");
	void *d = dst, *s = src;
	long n = 4096;
	__asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n)::"memory");
	for (int i = 0; i < 100; i++)
		__asm__ volatile("addq $1, (%0)" ::"r"(src) : "memory");
	}
	return 0;
}

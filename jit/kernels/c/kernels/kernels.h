/*
 * The jit's correctness and speed kernels. Every kernel is
 *
 *     long k_NAME(long n)
 *
 * deterministic, free of libc (the library is built with -nostdlib and
 * loaded by privload), and returns a checksum that the Go tests compare
 * between a native call and a run under the translator. n scales the work:
 * the tests use small n, the benchmarks larger.
 */
#define EXPORT __attribute__((visibility("default")))
typedef unsigned long u64;
typedef unsigned int u32;
typedef unsigned char u8;

/* common.c: what gcc may call on its own (struct copies, zeroing loops). */
void *memset(void *s, int c, unsigned long n);
void *memcpy(void *d, const void *s, unsigned long n);

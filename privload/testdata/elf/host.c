/*
 * host.c: a library bound to the host's libc and libm, with a versioned
 * libc reference (memcpy@GLIBC_2.2.5, the old memmove-compatible one,
 * which is not the default memcpy@@GLIBC_2.14), and functions with
 * integer, float and stack arguments for Func.Invoke.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

void *old_memcpy(void *, const void *, size_t);
__asm__(".symver old_memcpy, memcpy@GLIBC_2.2.5");

void *fx_old_memcpy(void) { return (void *)old_memcpy; }
void *fx_new_memcpy(void) { return (void *)memcpy; }

double fx_cos(double x) { return cos(x); }

/* snprintf: variadic, with a double in an XMM register. */
int fx_format(char *buf, long n, double x, long i) { return snprintf(buf, (size_t)n, "%.3f/%ld", x, i); }

/* Mixed classes: a in RDI, x in XMM0, b in RSI, y in XMM1, c in RDX. */
double fx_mix(long a, double x, int b, float y, long c) { return (double)a * x + (double)b * (double)y - (double)c; }

float fx_fsum(float a, float b) { return a + b; }

/* Nine integers: three on the stack. */
long fx_sum9(long a, long b, long c, long d, long e, long f, long g, long h, long i)
{
	return a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f + 7 * g + 8 * h + 9 * i;
}

/* Ten doubles and seven integers: two doubles and one integer on the
 * stack, interleaved as the ABI orders them. */
double fx_many(double d1, long i1, double d2, long i2, double d3, long i3, double d4, long i4, double d5, long i5,
	       double d6, long i6, double d7, long i7, double d8, double d9, double d10)
{
	return d1 + 2 * d2 + 3 * d3 + 4 * d4 + 5 * d5 + 6 * d6 + 7 * d7 + 8 * d8 + 9 * d9 + 10 * d10 +
	       (double)(i1 + 2 * i2 + 3 * i3 + 4 * i4 + 5 * i5 + 6 * i6 + 7 * i7);
}

long fx_nop(long x) { return x; }

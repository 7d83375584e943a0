/*
 * ifunc.c: an exported indirect function, fx_popcount, whose resolver
 * picks the POPCNT instruction if cpuid says the CPU has it, else a
 * portable loop, and records its choice. Built -nostdlib.
 */
typedef unsigned long u64;

static long chosen; /* 1: popcnt, 2: portable */
static volatile long calls;

static long pop_hw(u64 x)
{
	u64 r;
	__asm__("popcnt %1, %0" : "=r"(r) : "r"(x));
	return (long)r;
}

static long pop_sw(u64 x)
{
	long n = 0;
	for (; x; x &= x - 1)
		n++;
	return n;
}

static long (*resolve_popcount(void))(u64)
{
	unsigned a = 1, b, c = 0, d;
	__asm__("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
	calls = calls + 1;
	if (c & (1u << 23)) {
		chosen = 1;
		return pop_hw;
	}
	chosen = 2;
	return pop_sw;
}

long fx_popcount(u64) __attribute__((ifunc("resolve_popcount")));

long fx_popcount_impl(void) { return chosen; }
long fx_popcount_resolver_calls(void) { return calls; }

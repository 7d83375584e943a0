/* RIP-relative data: a CRC-32 table in .rodata, a buffer in .bss, a
 * counter in .data, string constants, and the address of a static
 * function taken with lea: every access is RIP-relative. */
#include "kernels.h"

static u32 table[256];
static u8 buf[4096];
static long calls = 7;
static const char msg[] = "reachvm keeps code and data within rel32 reach";

static void init(void) {
	for (u32 i = 0; i < 256; i++) {
		u32 c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
		table[i] = c;
	}
}

static u32 crc(const u8 *p, long len, u32 c) {
	c = ~c;
	while (len--)
		c = table[(c ^ *p++) & 0xff] ^ (c >> 8);
	return ~c;
}

static long helper(long x) { return x * 3 + calls; }
static long (*volatile helper_ptr)(long) = helper;

EXPORT long k_riprel(long n) {
	calls = 7;
	init();
	for (long i = 0; i < (long)sizeof buf; i++)
		buf[i] = msg[i % (sizeof msg - 1)] ^ (u8)i;
	u32 c = 0;
	for (long r = 0; r < n; r++) {
		c = crc(buf, sizeof buf, c);
		calls++;
		buf[r & 4095] ^= (u8)c;
	}
	return (long)c + helper_ptr(calls);
}

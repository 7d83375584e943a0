/* printf: rv_dprintf against the C library's printf. For each case it
 * prints the C library's formatting and then rv_dprintf's, each on a
 * line of its own; TestNativePrintf compares the pairs. */
#include <limits.h>
#include <stdio.h>
#include "reachvm.h"

#define CASE(...)                                   \
	do {                                        \
		printf(__VA_ARGS__);                \
		printf("\n");                       \
		fflush(stdout);                     \
		rv_dprintf(1, __VA_ARGS__);         \
		rv_dprintf(1, "\n");                \
	} while (0)

int main(void)
{
	static char big[1000];
	int i;

	for (i = 0; i < (int)sizeof big - 1; i++)
		big[i] = 'a' + i % 26;
	CASE("plain text");
	CASE("%d %d %d %d", 0, 1, -1, 42);
	CASE("%d %d", INT_MAX, INT_MIN);
	CASE("%i %u %u", -7, 7u, UINT_MAX);
	CASE("%x %x %x", 0u, 0xdeadbeefu, 255u);
	CASE("%ld %ld %lu %lx", LONG_MAX, LONG_MIN, ULONG_MAX, 0x123456789abcdefUL);
	CASE("%lld %llu %llx", LLONG_MIN, ULLONG_MAX, 0xfedcba9876543210ULL);
	CASE("%s|%s|%c%c", "hello", "", 'o', 'k');
	CASE("%p", (void *)0x7fff12345678);
	CASE("100%% done");
	CASE("%s", big);
	CASE("{\"client\":\"%s\",\"n\":%llu}", "x", 12345678901234ULL);
	return 0;
}

/* crt.dll: a DLL that imports from the host's C runtime and Winsock and
 * carries base relocations.
 *
 * - msvcrt.dll by name: strlen, strcmp, qsort (which calls back into this
 *   image), snprintf;
 * - ws2_32.dll by ordinal only: htonl is ordinal 8, the same on Windows and
 *   Wine (ws2_ord.def builds the import library that makes the import by
 *   ordinal);
 * - kernel32.dll by name: GetEnvironmentVariableA, so that a test can make
 *   DllMain fail.
 * - Tables of pointers to strings and to functions: IMAGE_REL_BASED_DIR64
 *   relocations. The DLL is linked at a non-default image base
 *   (0x7ff512340000) and privload places it in vmcode, so every one of them
 *   must be applied. */

#include <stddef.h>

#define EXPORT __declspec(dllexport)
#define IMPORT __declspec(dllimport)

IMPORT size_t strlen(const char *);
IMPORT int strcmp(const char *, const char *);
IMPORT void qsort(void *, size_t, size_t, int (*)(const void *, const void *));
IMPORT int _snprintf(char *, size_t, const char *, ...);
IMPORT unsigned long htonl(unsigned long);
IMPORT unsigned long __stdcall GetEnvironmentVariableA(const char *, char *, unsigned long);

/* Exported, so gcc cannot fold the strlen calls over it. */
EXPORT const char *fruit[] = {"pear", "apple", "fig", "banana", "cherry"};
#define NFRUIT (int)(sizeof fruit / sizeof fruit[0])
static const char *sorted[NFRUIT];

EXPORT volatile int attach_count;

static int cmp_str(const void *a, const void *b) {
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* total_len is the sum of strlen over the relocated table: 24. */
EXPORT int total_len(void) {
	int n = 0;
	for (int i = 0; i < NFRUIT; i++)
		n += (int)strlen(fruit[i]);
	return n;
}

/* sorted_fruit sorts the table with msvcrt's qsort (calling back into
 * cmp_str, in vmcode) and returns the i-th name. */
EXPORT const char *sorted_fruit(int i) {
	if (i < 0 || i >= NFRUIT)
		return NULL;
	for (int j = 0; j < NFRUIT; j++)
		sorted[j] = fruit[j];
	qsort(sorted, NFRUIT, sizeof sorted[0], cmp_str);
	return sorted[i];
}

static int cmp_int(const void *a, const void *b) {
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

EXPORT void sort_ints(int *a, int n) { qsort(a, (size_t)n, sizeof *a, cmp_int); }

EXPORT unsigned long swap32(unsigned long x) { return htonl(x); }

/* format writes "<s>=<n>" into buf through msvcrt's _snprintf. */
EXPORT int format(char *buf, int size, const char *s, int n) { return _snprintf(buf, (size_t)size, "%s=%d", s, n); }

static long long twice(long long x) { return 2 * x; }
static long long square(long long x) { return x * x; }
static long long (*const funcs[])(long long) = {twice, square};

EXPORT long long call_func(int i, long long x) { return i >= 0 && i < 2 ? funcs[i](x) : -1; }

int DllMain(void *hinst, unsigned reason, void *reserved) {
	(void)hinst;
	(void)reserved;
	if (reason == 1) {
		char v[8];
		if (GetEnvironmentVariableA("REACHVM_PE_FAIL_ATTACH", v, sizeof v) > 0)
			return 0;
		attach_count++;
	}
	return 1;
}

/*
 * demo.c: demo.dll, the Windows counterpart of libdemo.c. The same entry
 * points compute the same results (demolib.Expected), and each makes the
 * PE loader do the work its ELF twin makes the ELF loader do:
 *
 *   table_ptr      an address stored in data: an IMAGE_REL_BASED_DIR64 base
 *                  relocation (the DLL is linked at a base privload never
 *                  uses, so every one of them must be applied);
 *   helper_ptr     demo_helper's address stored in data: another DIR64;
 *   demo_scale     an exported variable, read through its export by tests;
 *   scratch        32 KiB of .bss: section bytes past the file's, which the
 *                  loader must zero;
 *   DllMain        the initialiser (DLL_PROCESS_ATTACH sets init_seed) and
 *                  finaliser (DLL_PROCESS_DETACH writes demo_fini_hook).
 *
 * long is 32 bits on Windows (LLP64): every quantity is long long, so that
 * the functions take and return 64-bit values as libdemo.so's do.
 * -nostdlib with DllMain as the entry point: no CRT, hence no imports and
 * no TLS directory, which privload refuses.
 *
 * Rebuild with ../build.sh (go generate ./internal/demolib).
 */

typedef unsigned long long u64;
typedef long long i64;

#define EXPORT __declspec(dllexport)

#define DLL_PROCESS_DETACH 0
#define DLL_PROCESS_ATTACH 1

static const i64 table[8] = {3, 1, 4, 1, 5, 9, 2, 6};

/* volatile: gcc must load the pointer at run time instead of folding it. */
static const i64 *const volatile table_ptr = table;

EXPORT i64 demo_scale = 7;

EXPORT i64 *demo_fini_hook;

EXPORT i64 demo_helper(i64 x);

/* volatile: the call must go through the stored pointer. */
static i64 (*volatile helper_ptr)(i64) = demo_helper;

static volatile i64 scratch[4096];
static volatile i64 calls;
static volatile i64 init_seed;

EXPORT i64 demo_helper(i64 x)
{
	return (i64)((u64)x * 3 + 1);
}

EXPORT i64 demo_compute(i64 a, i64 b)
{
	u64 i = (u64)(a ^ b) % 4096;
	u64 v;

	/* Reads 0 from fresh .bss, so v == b; then leaves the slot zero. */
	scratch[i] = scratch[i] + b;
	v = (u64)scratch[i];
	scratch[i] = 0;
	calls = calls + 1;

	return (i64)((u64)demo_helper(a) + (u64)helper_ptr(b) +
		     (u64)table_ptr[(u64)(a + b) & 7] * (u64)b + (u64)demo_scale + v +
		     (u64)init_seed);
}

EXPORT i64 demo_calls(void)
{
	return calls;
}

int DllMain(void *hinst, unsigned reason, void *reserved)
{
	(void)hinst;
	(void)reserved;
	switch (reason) {
	case DLL_PROCESS_ATTACH:
		init_seed = 1000;
		break;
	case DLL_PROCESS_DETACH:
		if (demo_fini_hook)
			*demo_fini_hook = calls;
		break;
	}
	return 1;
}

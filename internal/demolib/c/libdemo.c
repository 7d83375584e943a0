/*
 * libdemo.c: the client library of privload's walking skeleton.
 *
 * It has no libc dependency (built with -nostdlib) and is small, but every
 * piece of it makes the loader do real work:
 *
 *   table_ptr      an address stored in data: R_X86_64_RELATIVE (in .data:
 *                  volatile keeps it out of .data.rel.ro); the
 *                  .init_array and .fini_array entries are RELATIVE
 *                  relocations inside PT_GNU_RELRO, as are the GOT slots;
 *   demo_scale     an exported (preemptible) global read through the GOT:
 *                  R_X86_64_GLOB_DAT;
 *   demo_helper    an exported (preemptible) function called through the
 *                  PLT: R_X86_64_JUMP_SLOT, bound at load time (-z now);
 *   helper_ptr     its address stored in data: the linker cannot resolve a
 *                  preemptible symbol, so R_X86_64_64 against demo_helper;
 *   scratch        32 KiB of .bss: the tail of the last file page must be
 *                  zeroed and the pages past the file committed;
 *   demo_init      a constructor: DT_INIT_ARRAY, whose entry is itself a
 *                  RELATIVE relocation;
 *   demo_fini      a destructor: DT_FINI_ARRAY, run by Library.Close.
 *
 * The result formula is mirrored in Go by demolib.Expected; keep both in
 * step. Arithmetic is done unsigned so that overflow wraps (as in Go) rather
 * than being undefined.
 *
 * Rebuild with ../build.sh (go generate ./internal/demolib).
 */

typedef unsigned long u64;

static const long table[8] = {3, 1, 4, 1, 5, 9, 2, 6};

/* volatile: gcc must load the pointer at run time instead of folding it. */
static const long *const volatile table_ptr = table;

long demo_scale = 7;

long *demo_fini_hook;

long demo_helper(long x);

/* volatile: the call must go through the stored pointer. */
static long (*volatile helper_ptr)(long) = demo_helper;

static volatile long scratch[4096];
static volatile long calls;
static volatile long init_seed;

__attribute__((constructor)) static void demo_init(void)
{
	init_seed = 1000;
}

__attribute__((destructor)) static void demo_fini(void)
{
	if (demo_fini_hook)
		*demo_fini_hook = calls;
}

long demo_helper(long x)
{
	return (long)((u64)x * 3 + 1);
}

long demo_compute(long a, long b)
{
	u64 i = (u64)(a ^ b) % 4096;
	u64 v;

	/* Reads 0 from fresh .bss, so v == b; then leaves the slot zero. */
	scratch[i] = scratch[i] + b;
	v = (u64)scratch[i];
	scratch[i] = 0;
	calls = calls + 1;

	return (long)((u64)demo_helper(a) + (u64)helper_ptr(b) +
		      (u64)table_ptr[(u64)(a + b) & 7] * (u64)b + (u64)demo_scale + v +
		      (u64)init_seed);
}

long demo_calls(void)
{
	return calls;
}

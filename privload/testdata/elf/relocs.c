/*
 * relocs.c: every relocation type privload applies, in one library built
 * with -nostdlib (nothing to bind outside it). Built twice: with RELA
 * RELATIVE relocations and with DT_RELR (-z pack-relative-relocs).
 *
 *   tab_ptr, tab_ptrs  addresses in data: R_X86_64_RELATIVE (or DT_RELR)
 *   fx_var             exported, preemptible, read through the GOT:
 *                      R_X86_64_GLOB_DAT
 *   fx_twice           exported function called through the PLT:
 *                      R_X86_64_JUMP_SLOT
 *   fn_ptr             its address in data: R_X86_64_64 against fx_twice
 *   elem_ptr           &fx_array[3]: R_X86_64_64 with addend 24
 *   local_ifunc        a static ifunc: R_X86_64_IRELATIVE
 *   fx_ifunc           an exported ifunc called through the PLT: a
 *                      JUMP_SLOT to an STT_GNU_IFUNC symbol
 *   big                64 KiB of .bss
 *   ctor/dtor, my_init/my_fini  DT_INIT_ARRAY, DT_FINI_ARRAY, DT_INIT,
 *                      DT_FINI (-Wl,-init,my_init -Wl,-fini,my_fini)
 *
 * fx_check returns a bitmask, one bit per check that passes (FX_ALL when
 * all do); the Go test also reads the values itself.
 */

typedef unsigned long u64;

static const long tab[8] = {10, 20, 30, 40, 50, 60, 70, 80};
static const long *const volatile tab_ptr = tab;
static const long *volatile tab_ptrs[4] = {&tab[0], &tab[2], &tab[4], &tab[6]};

long fx_var = 42;
long fx_array[8] = {0, 1, 2, 3, 4, 5, 6, 7};
long *volatile elem_ptr = &fx_array[3];

long fx_twice(long x) { return 2 * x; }
static long (*volatile fn_ptr)(long) = fx_twice;

static volatile long big[8192];

/* The order constructors and destructors ran in, as digits: DT_INIT runs
 * before DT_INIT_ARRAY, DT_FINI_ARRAY before DT_FINI. */
long fx_order;
long *fx_fini_out;

static void note(long d) { fx_order = fx_order * 10 + d; }

void my_init(void) { note(1); }
__attribute__((constructor)) static void ctor(void) { note(2); }
__attribute__((destructor)) static void dtor(void) { note(3); }
void my_fini(void)
{
	note(4);
	if (fx_fini_out)
		*fx_fini_out = fx_order;
}

/* A local ifunc: its calls go through an R_X86_64_IRELATIVE slot. */
static long impl_a(long x) { return x + 1000; }
static long (*resolve_local(void))(long) { return impl_a; }
static long local_ifunc(long) __attribute__((ifunc("resolve_local")));

/* An exported ifunc; the resolver counts its calls in .bss. */
static volatile long resolver_calls;
static long ifunc_impl(long x) { return x * 3; }
static long (*resolve_exported(void))(long)
{
	resolver_calls = resolver_calls + 1;
	return ifunc_impl;
}
long fx_ifunc(long) __attribute__((ifunc("resolve_exported")));

long fx_resolver_calls(void) { return resolver_calls; }

#define FX_ALL 0x1ff

long fx_check(void)
{
	long ok = 0;
	u64 i;

	if (tab_ptr[5] == 60)
		ok |= 1 << 0;
	for (i = 0; i < 4; i++)
		if (tab_ptrs[i] != &tab[2 * i])
			break;
	if (i == 4)
		ok |= 1 << 1;
	if (fx_var == 42)
		ok |= 1 << 2;
	if (fx_twice(21) == 42)
		ok |= 1 << 3;
	if (fn_ptr(5) == 10)
		ok |= 1 << 4;
	if (*elem_ptr == 3 && elem_ptr == &fx_array[3])
		ok |= 1 << 5;
	if (local_ifunc(1) == 1001)
		ok |= 1 << 6;
	if (fx_ifunc(7) == 21)
		ok |= 1 << 7;
	for (i = 0; i < 8192; i++)
		if (big[i] != 0)
			break;
	if (i == 8192)
		ok |= 1 << 8;
	return ok;
}

/* Addresses for the Go test to compare with its own lookups. */
void *fx_addr_of_twice(void) { return (void *)fn_ptr; }
void *fx_addr_of_ifunc(void) { return (void *)fx_ifunc; }

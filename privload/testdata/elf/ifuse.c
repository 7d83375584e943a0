/*
 * ifuse.c: calls another library's ifunc through the PLT (JUMP_SLOT) and
 * keeps its address in data (GLOB_DAT through the GOT, and R_X86_64_64).
 */
typedef unsigned long u64;

long fx_popcount(u64);
static long (*volatile pop_ptr)(u64) = fx_popcount;

long fx_ifuse_count(u64 x) { return fx_popcount(x); }
long fx_ifuse_count_ptr(u64 x) { return pop_ptr(x); }
void *fx_ifuse_addr(void) { return (void *)fx_popcount; }

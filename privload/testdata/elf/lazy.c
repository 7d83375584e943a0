/*
 * lazy.c: a library linked for lazy binding (-z lazy, -z norelro): its
 * PLT slots start out pointing back into the PLT, to be bound by the
 * dynamic linker on first call. privload binds them all at load, as
 * LD_BIND_NOW does. It calls the host's libc through the PLT.
 */
#include <string.h>

long fx_lazy_helper(long x) { return x * 7; }

long fx_lazy_len(const char *s) { return (long)strlen(s) + fx_lazy_helper(1); }

int fx_lazy_cmp(const char *a, const char *b, long n) { return memcmp(a, b, (size_t)n) == 0; }

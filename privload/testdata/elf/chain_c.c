/*
 * chain_c.c: the end of the chain a -> b -> c; found on Options.SearchPath
 * (it is not next to a). fx_trace is defined by none of the three: the
 * test supplies it through Options.Imports, so that the order of
 * initialisers and finalisers is recorded in Go memory that outlives the
 * libraries. fx_who is defined here and in a: c's own call binds to a's
 * definition, which comes first in the search scope (ld.so's
 * interposition).
 */
extern long fx_trace[];

static void trace(long v) { fx_trace[++fx_trace[0]] = v; }

__attribute__((constructor)) static void c_init(void) { trace(3); }
__attribute__((destructor)) static void c_fini(void) { trace(-3); }

long fx_who(void) { return 3; }
long fx_c(long x) { return x + fx_who(); }

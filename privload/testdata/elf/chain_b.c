/* chain_b.c: the middle of the chain a -> b -> c; next to a. */
extern long fx_trace[];
long fx_c(long x);

static void trace(long v) { fx_trace[++fx_trace[0]] = v; }

__attribute__((constructor)) static void b_init(void) { trace(2); }
__attribute__((destructor)) static void b_fini(void) { trace(-2); }

long fx_b(long x) { return fx_c(x) + 100; }

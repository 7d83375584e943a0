/* chain_a.c: the root of the chain a -> b -> c. */
extern long fx_trace[];
long fx_b(long x);

static void trace(long v) { fx_trace[++fx_trace[0]] = v; }

__attribute__((constructor)) static void a_init(void) { trace(1); }
__attribute__((destructor)) static void a_fini(void) { trace(-1); }

long fx_who(void) { return 1; }
long fx_a(long x) { return fx_b(x) * 2; }

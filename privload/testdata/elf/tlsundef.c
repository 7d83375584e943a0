/* tlsundef.c: a library with thread-local storage of its own and a
 * reference to a thread-local variable no library defines: the load
 * fails after its TLS was set up, which must leave nothing behind. */
extern __thread long fx_nowhere;
__thread long fx_here = 1;

long fx_undef_get(void) { return fx_nowhere + fx_here; }

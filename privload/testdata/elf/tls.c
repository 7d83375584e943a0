/* tls.c: one exported thread-local variable (PT_TLS, .tbss only), bumped
 * through the global-dynamic model. */
__thread long fx_tls_counter;

long fx_tls_bump(void) { return ++fx_tls_counter; }

/* tls.c: thread-local storage (PT_TLS), which privload refuses. */
__thread long fx_tls_counter;

long fx_tls_bump(void) { return ++fx_tls_counter; }

/* tlsdesc.c: an exported thread-local variable reached through a TLS
 * descriptor (built with -mtls-dialect=gnu2: R_X86_64_TLSDESC), which
 * privload refuses. */
__thread long fx_desc = 3;

long fx_desc_get(void) { return fx_desc; }

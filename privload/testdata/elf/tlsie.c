/* tlsie.c: an initial-exec thread-local variable, which a shared object
 * can only have in the host's static TLS (R_X86_64_TPOFF64): privload
 * refuses it. */
__attribute__((tls_model("initial-exec"))) __thread long fx_ie = 1;

long fx_ie_get(void) { return fx_ie; }

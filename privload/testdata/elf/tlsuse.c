/* tlsuse.c: a thread-local variable of another library (libfx_tlsmodels's
 * fx_gd: R_X86_64_DTPMOD64 and DTPOFF64 against its symbol) and one of its
 * own, so that the group has two modules. */
extern __thread long fx_gd;
__thread long fx_use_own = 7;

long fx_use_gd(void) { return fx_gd; }
long fx_use_bump(void) { fx_use_own++; return ++fx_gd * 100 + fx_use_own; }

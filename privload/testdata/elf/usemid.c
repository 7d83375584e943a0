/* usemid.c: the top of top -> mid -> libfx_which.so, linked with the
 * DT_RPATH or DT_RUNPATH under test: only a DT_RPATH reaches the
 * dependencies of mid. */
long fx_use(void);
long fx_top(void) { return fx_use(); }

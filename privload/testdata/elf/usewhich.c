/* usewhich.c: a library that needs libfx_which.so, linked with the
 * DT_RPATH, DT_RUNPATH or neither under test; fx_use returns what the
 * copy found returns. */
long fx_which(void);
long fx_use(void) { return fx_which(); }

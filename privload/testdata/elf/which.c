/* which.c: one of several copies of libfx_which.so, told apart by the
 * value fx_which returns (FX_WHICH, set on the command line), so that a
 * test can prove which directory of the search a copy was taken from. */
long fx_which(void) { return FX_WHICH; }

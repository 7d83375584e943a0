/* undef.c: references a function nothing defines. */
long fx_missing(long);

long fx_undef(long x) { return fx_missing(x); }

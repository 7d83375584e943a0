/* plain.c: a library with one function, linked with flags under test
 * (an executable stack; a dependency that is then removed). */
long fx_plain(long x) { return x + 1; }

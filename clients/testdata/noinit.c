/* noinit: a shared library that is not a reachvm client. */
int noinit_answer(void) { return 42; }

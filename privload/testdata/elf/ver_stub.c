/* ver_stub.c: libfx_ver.so without versions, for linking verold.c only. */
int vfunc(void) { return 0; }

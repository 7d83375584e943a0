/*
 * verold.c: an unversioned reference to vfunc (linked against a
 * libfx_ver.so without versions). glibc gives such a reference, from an
 * object older than the versions, the oldest version (index 2): VER_1.
 */
int vfunc(void);

int call_vfunc(void) { return vfunc(); }

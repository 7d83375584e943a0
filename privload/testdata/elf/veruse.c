/*
 * veruse.c: versioned references to libfx_ver.so: vfunc binds at link
 * time to the default, vfunc@@VER_2; vfunc_old names vfunc@VER_1.
 */
int vfunc(void);
int vfunc_old(void);
__asm__(".symver vfunc_old, vfunc@VER_1");
extern int vdata;

int use_new(void) { return vfunc(); }
int use_old(void) { return vfunc_old(); }
int use_data(void) { return vdata; }

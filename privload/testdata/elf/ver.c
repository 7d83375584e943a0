/*
 * ver.c: two versions of vfunc (vfunc@VER_1, the old one, and
 * vfunc@@VER_2, the default), and vdata@@VER_1. Linked with ver.map.
 */
int vfunc_1(void) { return 1; }
int vfunc_2(void) { return 2; }
__asm__(".symver vfunc_1, vfunc@VER_1");
__asm__(".symver vfunc_2, vfunc@@VER_2");

int vdata = 77;

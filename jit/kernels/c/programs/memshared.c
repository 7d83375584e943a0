/* memshared: MAP_SHARED views of a file (argv[1], created): writes
 * through a view reach the file and a second view, writes to the file
 * show in the views, msync, MAP_SHARED_VALIDATE, and a read-only
 * descriptor's views readable only (EACCES for a writable one). One line
 * a step, for comparison with the native run. */
#include "rt.h"

#define PG 4096L
#define O_RDONLY 0
#define O_RDWR 2
#define O_CREAT 0100
#define O_TRUNC 01000
#define MAP_SHARED_VALIDATE 0x03

int main(int argc, char **argv, char **envp) {
	if (argc < 2)
		return 2;
	long fd = sys3(2, argv[1], O_RDWR | O_CREAT | O_TRUNC, 0600);
	line("open", fd >= 0);
	line("ftruncate", rt_ftruncate((int)fd, 2 * PG));
	unsigned char *a = rt_mmap(0, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, (int)fd, 0);
	line("map", a != MAP_FAILED);
	for (long i = 0; i < 2 * PG; i++)
		a[i] = (unsigned char)(i * 3 + 1);
	unsigned char b[16];
	sys6(17, fd, (long)b, 16, PG + 8, 0, 0); /* pread64 */
	line("write_through", b[0] == (unsigned char)((PG + 8) * 3 + 1) && b[15] == (unsigned char)((PG + 23) * 3 + 1));
	unsigned char *v = rt_mmap(0, PG, PROT_READ, MAP_SHARED_VALIDATE, (int)fd, PG);
	line("second_view", v != MAP_FAILED && v[8] == b[0]);
	a[PG + 100] = 0x77;
	line("second_view_sees", v[100] == 0x77);
	unsigned char w = 0x42;
	sys6(18, fd, (long)&w, 1, 5, 0, 0); /* pwrite64 */
	line("read_through", a[5] == 0x42);
	line("msync", sys3(26, a, 2 * PG, 4)); /* MS_SYNC */
	line("munmap", rt_munmap(v, PG));
	long ro = sys3(2, argv[1], O_RDONLY, 0);
	line("ro_writable", (long)rt_mmap(0, PG, PROT_READ | PROT_WRITE, MAP_SHARED, (int)ro, 0));
	unsigned char *r = rt_mmap(0, PG, PROT_READ, MAP_SHARED, (int)ro, 0);
	line("ro_readable", r != MAP_FAILED && r[5] == 0x42);
	line("mprotect_ro_writable", rt_mprotect(r, PG, PROT_READ | PROT_WRITE));
	rt_close((int)ro);
	rt_close((int)fd);
	line("after_close", a[PG + 100] == 0x77 && r[0] == 0x42 - 0x42 + a[0]);
	sys3(87, argv[1], 0, 0); /* unlink */
	return 6;
}

/* libc: a dynamic program that uses what a C library does at and after
 * start: stdio, the environment, errno (thread-local), malloc and
 * realloc of big blocks (mmap and mremap), qsort through function
 * pointers, strtod and printf of floating point, time, sched_getcpu,
 * getrlimit, dlopen of a library and a call into it, setjmp/longjmp, a
 * signal handler, and atexit handlers; it exits with the status given
 * as its first argument. Its output does not depend on where or when it
 * runs. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static int cmp(const void *a, const void *b) {
	long x = *(const long *)a, y = *(const long *)b;
	return (x > y) - (x < y);
}

static jmp_buf jb;
static volatile sig_atomic_t got;
static void on_usr1(int sig) {
	got = sig;
	longjmp(jb, 7);
}
static void bye(void) { printf("atexit\n"); }

int main(int argc, char **argv) {
	atexit(bye);
	printf("argc %d argv1 %s\n", argc, argc > 1 ? argv[1] : "-");
	const char *rv = getenv("RV");
	printf("env RV=%s\n", rv ? rv : "(unset)");
	errno = 0;
	if (open("/nonexistent/libc-test", 0) < 0)
		printf("errno %d %s\n", errno, strerror(errno));

	/* Big blocks: mmapped by malloc, grown by realloc (mremap). */
	size_t n = 1 << 20;
	unsigned char *p = malloc(n);
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(i * 31 + 7);
	for (int k = 0; k < 6; k++) {
		n *= 2;
		p = realloc(p, n);
		if (!p)
			return 90;
		memset(p + n / 2, k + 1, n / 2);
	}
	unsigned long sum = 0;
	for (size_t i = 0; i < n; i += 4093)
		sum += p[i] * (i % 7 + 1);
	printf("realloc %zu sum %lu\n", n, sum);
	p = realloc(p, 3 << 20);
	printf("shrunk first %d\n", p[1]);
	free(p);

	long v[1000];
	for (int i = 0; i < 1000; i++)
		v[i] = (i * 7919) % 1009;
	qsort(v, 1000, sizeof v[0], cmp);
	printf("qsort %ld %ld %ld\n", v[0], v[500], v[999]);
	double d = strtod("2.718281828459045", 0);
	printf("float %.6f %.3e %g\n", d * d, sqrt(d) * 1e10, d / 3);

	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	struct timespec t2;
	clock_gettime(CLOCK_MONOTONIC, &t2);
	printf("clock %d\n", t2.tv_sec > ts.tv_sec || (t2.tv_sec == ts.tv_sec && t2.tv_nsec >= ts.tv_nsec));
	time_t now = time(0);
	printf("time %d\n", now > 1600000000);
	int cpu = sched_getcpu();
	printf("cpu %d\n", cpu >= 0 && cpu < CPU_SETSIZE);
	struct rlimit rl;
	printf("getrlimit %d\n", getrlimit(RLIMIT_NOFILE, &rl));

	void *m = dlopen("libm.so.6", RTLD_NOW);
	double (*cosf)(double) = m ? (double (*)(double))dlsym(m, "cos") : 0;
	printf("dlopen %d cos %.4f\n", m != 0, cosf ? cosf(1.0) : -9.0);
	if (m)
		dlclose(m);

	signal(SIGUSR1, on_usr1);
	int r = setjmp(jb);
	if (r == 0)
		raise(SIGUSR1);
	printf("signal %d longjmp %d\n", (int)got, r);
	fflush(stdout);
	return argc > 1 ? atoi(argv[1]) : 0;
}

/*
 * threads MODE N [USEC]: the same work, work(N) eight times, done by
 *   serial   the main thread, eight calls in a row;
 *   pthread  eight POSIX threads, joined;
 *   clone    eight raw clone(2) threads, which the main thread waits
 *            for with one FUTEX_WAIT each on the tid the kernel clears
 *            at their exit: no loop whose count depends on timing, so
 *            that the instruction count is the same at every run.
 *   signals  the main thread, as serial, while an interval timer sends
 *            it SIGALRM every USEC microseconds (its handler counts them):
 *            the instructions of work must not change.
 * It prints the work's combined result, the same in every mode (and in
 * the signals mode the number of signals on a second line).
 * refs_linux_test.go counts the instructions of work by its symbol.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { nthreads = 8, stack_size = 64 << 10 };

static unsigned long n, results[nthreads];

/* work is a leaf, kept out of line so that its instructions lie within
 * its symbol, and out of gcc's interprocedural analysis (noipa), which
 * would see it pure and call it once for the serial mode's eight. */
__attribute__((noipa)) unsigned long work(unsigned long n) {
	unsigned long x = 1;
	for (unsigned long i = 0; i < n; i++)
		x = x * 6364136223846793005UL + i;
	return x;
}

static void *pthread_main(void *arg) {
	long i = (long)arg;
	results[i] = work(n);
	return NULL;
}

static volatile long signals;

static void on_alarm(int sig) {
	(void)sig;
	signals++;
}

static int clone_main(void *arg) {
	long i = (long)arg;
	results[i] = work(n);
	return 0;
}

/* futex_wait waits once while *addr is val: a raw system call, so that
 * no errno is set and nothing branches on its result. */
static void futex_wait(volatile int *addr, int val) {
	register long r10 __asm__("r10") = 0;
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "0"(202L), "D"(addr), "S"(0L), "d"((long)val), "r"(r10) : "rcx", "r11", "memory");
}

int main(int argc, char **argv) {
	if (argc < 3)
		return 2;
	n = strtoul(argv[2], NULL, 10);
	if (strcmp(argv[1], "serial") == 0) {
		for (long i = 0; i < nthreads; i++)
			results[i] = work(n);
	} else if (strcmp(argv[1], "signals") == 0) {
		struct sigaction sa = {.sa_handler = on_alarm, .sa_flags = SA_RESTART};
		long usec = argc > 3 ? strtol(argv[3], NULL, 10) : 200;
		struct itimerval it = {{0, usec}, {0, usec}}, off = {{0, 0}, {0, 0}};
		if (sigaction(SIGALRM, &sa, NULL) != 0 || setitimer(ITIMER_REAL, &it, NULL) != 0)
			return 3;
		for (long i = 0; i < nthreads; i++)
			results[i] = work(n);
		setitimer(ITIMER_REAL, &off, NULL);
	} else if (strcmp(argv[1], "pthread") == 0) {
		pthread_t t[nthreads];
		for (long i = 0; i < nthreads; i++)
			if (pthread_create(&t[i], NULL, pthread_main, (void *)i) != 0)
				return 3;
		for (long i = 0; i < nthreads; i++)
			pthread_join(t[i], NULL);
	} else if (strcmp(argv[1], "clone") == 0) {
		static volatile int tids[nthreads];
		int started[nthreads];
		char *stacks = malloc(nthreads * stack_size);
		if (stacks == NULL)
			return 3;
		for (long i = 0; i < nthreads; i++) {
			int flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
				    CLONE_SYSVSEM | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID;
			started[i] = clone(clone_main, stacks + (i + 1) * stack_size, flags,
					   (void *)i, &tids[i], NULL, &tids[i]);
			if (started[i] == -1)
				return 3;
		}
		for (long i = 0; i < nthreads; i++)
			futex_wait(&tids[i], started[i]);
	} else {
		return 2;
	}
	unsigned long sum = 0;
	for (long i = 0; i < nthreads; i++)
		sum += results[i];
	printf("%lu\n", sum);
	if (strcmp(argv[1], "signals") == 0)
		printf("%ld signals\n", signals);
	return 0;
}

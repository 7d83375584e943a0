// closeall: what daemons and shells do before they exec: close every
// descriptor but the standard ones, by a loop of close, by close_range,
// and by dup2 over each, then go on working: start threads, translate
// new code, sleep, print.
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void *work(void *arg) {
	long n = (long)arg, s = 0;
	for (long i = 0; i < 100000 * n; i++)
		s += i % (n + 3);
	return (void *)s;
}

static long spawn(long n) {
	pthread_t t;
	void *r;
	if (pthread_create(&t, NULL, work, (void *)n) != 0)
		return -1;
	pthread_join(t, &r);
	return (long)r;
}

int main(void) {
	for (int fd = 3; fd < 1100; fd++)
		close(fd);
	printf("loop of close: %ld\n", spawn(1));
	// glibc's closefrom falls back on a loop where close_range is missing.
	long r = syscall(SYS_close_range, 3, ~0U, 0);
	printf("close_range: %ld %ld\n", r, spawn(2));
	int devnull = open("/dev/null", O_WRONLY);
	printf("first open after closing: %d\n", devnull >= 3);
	for (int fd = 3; fd < 1100; fd++)
		if (fd != devnull)
			dup2(devnull, fd);
	struct timespec ts = {0, 50 * 1000 * 1000};
	nanosleep(&ts, NULL);
	printf("dup2 over every descriptor: %ld\n", spawn(3));
	FILE *f = tmpfile();
	fprintf(f, "still working\n");
	rewind(f);
	char line[64] = "";
	fgets(line, sizeof line, f);
	printf("%s", line);
	return 0;
}

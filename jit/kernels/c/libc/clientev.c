/* clientev: what a client's events see. It dlopens libm and dlcloses it
 * (a module loaded and unloaded), prints getpid's result (a client may
 * skip the call and answer itself), raises SIGUSR1 and SIGUSR2 (a client
 * may suppress a signal), starts and joins two threads, and exits with
 * status 3. */
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

static void *worker(void *arg) {
	long n = (long)arg, s = 0;
	for (long i = 0; i < n; i++)
		s += i;
	return (void *)s;
}

static void handler(int sig) {
	static const char usr1[] = "handled SIGUSR1\n", usr2[] = "handled SIGUSR2\n";
	if (sig == SIGUSR1)
		write(1, usr1, sizeof usr1 - 1);
	else
		write(1, usr2, sizeof usr2 - 1);
}

int main(void) {
	void *m = dlopen("libm.so.6", RTLD_NOW | RTLD_LOCAL);
	if (!m) {
		printf("dlopen: %s\n", dlerror());
		return 1;
	}
	double (*cosf_)(double) = (double (*)(double))dlsym(m, "cos");
	printf("cos(0) = %g\n", cosf_(0));
	dlclose(m);
	printf("pid %ld\n", (long)getpid());
	fflush(stdout);
	signal(SIGUSR1, handler);
	signal(SIGUSR2, handler);
	raise(SIGUSR1);
	raise(SIGUSR2);
	pthread_t t[2];
	for (long i = 0; i < 2; i++)
		pthread_create(&t[i], 0, worker, (void *)(1000 * (i + 1)));
	for (int i = 0; i < 2; i++) {
		void *r;
		pthread_join(t[i], &r);
		printf("thread %d: %ld\n", i, (long)r);
	}
	fflush(stdout);
	return 3;
}

/* tlsmodels.c: thread-local variables in the models a shared object can
 * use with privload: global-dynamic (an exported variable, reached through
 * __tls_get_addr with its own module id and offset) and local-dynamic
 * (static and hidden variables: one __tls_get_addr call for the module's
 * block, link-time offsets), with initialised (.tdata), zeroed (.tbss) and
 * over-aligned variables. Built with libc, so the TLS is the first thing
 * every thread's access allocates. */
#include <pthread.h>
#include <stdint.h>

__thread long fx_gd = 11;
static __thread long fx_ld = 22;
__attribute__((visibility("hidden"))) __thread long fx_ld_hidden = 33;
__thread char fx_tbss[64];
__thread long fx_aligned __attribute__((aligned(64))) = 44;

/* fx_tls_get returns variable which (0: gd, 1: ld, 2: ld_hidden, 3:
 * aligned, 4: the sum of fx_tbss's bytes). */
long fx_tls_get(int which)
{
	switch (which) {
	case 0: return fx_gd;
	case 1: return fx_ld;
	case 2: return fx_ld_hidden;
	case 3: return fx_aligned;
	case 4: {
		long s = 0;
		for (int i = 0; i < 64; i++) s += fx_tbss[i];
		return s;
	}
	}
	return -1;
}

/* fx_tls_add adds d to every variable and to each byte of fx_tbss, and
 * returns the new sum of the four longs. */
long fx_tls_add(long d)
{
	fx_gd += d;
	fx_ld += d;
	fx_ld_hidden += d;
	fx_aligned += d;
	for (int i = 0; i < 64; i++) fx_tbss[i] += (char)d;
	return fx_gd + fx_ld + fx_ld_hidden + fx_aligned;
}

/* fx_tls_addr returns the address of variable which in the calling
 * thread (0: gd, 1: ld, 2: ld_hidden, 3: aligned, 4: fx_tbss). */
void *fx_tls_addr(int which)
{
	switch (which) {
	case 0: return &fx_gd;
	case 1: return &fx_ld;
	case 2: return &fx_ld_hidden;
	case 3: return &fx_aligned;
	case 4: return fx_tbss;
	}
	return 0;
}

/* fx_plain is the same call without thread-local storage, the
 * benchmarks' baseline. */
long fx_plain(long x) { return x + 1; }

/* fx_tls_one reads fx_gd through its own __tls_get_addr call: out of
 * line, so that fx_tls_loop pays one per iteration. */
__attribute__((noinline)) static long fx_tls_one(void)
{
	__asm__ volatile("");
	return fx_gd;
}

/* fx_tls_loop reads fx_gd n times, each through __tls_get_addr. */
long fx_tls_loop(long n)
{
	long s = 0;
	for (long i = 0; i < n; i++)
		s += fx_tls_one();
	return s;
}

static void *fx_tls_thread(void *arg)
{
	return (void *)fx_tls_add((long)arg);
}

/* fx_tls_in_thread runs fx_tls_add(d) on a thread of its own, which
 * privload has never seen, and returns its result (-1 if the thread could
 * not be made). */
long fx_tls_in_thread(long d)
{
	pthread_t th;
	void *ret;
	if (pthread_create(&th, 0, fx_tls_thread, (void *)d) != 0)
		return -1;
	if (pthread_join(th, &ret) != 0)
		return -1;
	return (long)ret;
}

/* sig_bench: the cost of signals, measured by the program itself with
 * clock_gettime(CLOCK_MONOTONIC).
 *
 *   sig_bench raise N   N round trips kill(getpid(), SIGUSR1) -> handler
 *                       -> rt_sigreturn; prints ns_per_raise.
 *   sig_bench delay N   a POSIX timer sends SIGALRM every 2 ms (absolute
 *                       expiries) into a busy loop that makes no system
 *                       call; the handler takes the time: prints the mean
 *                       and largest delay from expiry to handler, in ns,
 *                       or "lost" if no signal came for about a second. */
#include "rt.h"

static volatile long count;
static void h_count(int sig) {
	(void)sig;
	count++;
}

#define PERIOD 2000000L
static int timer;
static long t0, delay_sum, delay_max;
static void h_alarm(int sig) {
	(void)sig;
	long now = rt_now_ns();
	long k = count + 1 + sys3(225, timer, 0, 0); /* timer_getoverrun */
	long d = now - (t0 + k * PERIOD);
	delay_sum += d;
	if (d > delay_max)
		delay_max = d;
	count = k;
}

int main(int argc, char **argv, char **envp) {
	(void)envp;
	if (argc < 3)
		return 100;
	long n = atol_(argv[2]);
	if (streq(argv[1], "raise")) {
		rt_install(SIGUSR1, h_count, 0, 0);
		long pid = rt_getpid();
		long start = rt_now_ns();
		for (long i = 0; i < n; i++)
			rt_kill(pid, SIGUSR1);
		long ns = rt_now_ns() - start;
		if (count != n)
			return 2;
		puts_("ns_per_raise ");
		putn(ns / n);
		puts_("\n");
		return 0;
	}
	if (!streq(argv[1], "delay"))
		return 101;
	rt_install(SIGALRM, h_alarm, 0, 0);
	/* sigevent: value, signo, notify (SIGEV_SIGNAL), padding. */
	long sev[8] = {0};
	((int *)sev)[2] = SIGALRM;
	if (sys3(222, 1, sev, &timer) != 0) /* timer_create(CLOCK_MONOTONIC) */
		return 3;
	t0 = rt_now_ns();
	long its[4] = {0, PERIOD, (t0 + PERIOD) / 1000000000L, (t0 + PERIOD) % 1000000000L};
	if (sys6(223, timer, 1, (long)its, 0, 0, 0) != 0) /* timer_settime, TIMER_ABSTIME */
		return 4;
	/* A busy loop without system calls, that gives up after about a
	 * second without a signal. */
	long last = 0;
	for (unsigned long spin = 0; count < n; spin++) {
		if (count != last)
			last = count, spin = 0;
		if (spin > 400000000UL) {
			puts_("lost\n");
			return 0;
		}
	}
	sys3(226, timer, 0, 0); /* timer_delete */
	puts_("delay_ns_mean ");
	putn(delay_sum / count);
	puts_(" delay_ns_max ");
	putn(delay_max);
	puts_("\n");
	return 0;
}

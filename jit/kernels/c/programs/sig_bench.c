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

#define SIGUSR1 10
#define SIGALRM 14
#define SA_RESTORER 0x04000000

struct ksigaction {
	void *handler;
	unsigned long flags;
	void (*restorer)(void);
	unsigned long mask;
};
extern void sig_restorer(void);
__asm__(".text\n.globl sig_restorer\nsig_restorer:\n\tmov $15, %eax\n\tsyscall\n\thlt\n");

static long now_ns(void) {
	long ts[2];
	sys3(228, 1, ts, 0);
	return ts[0] * 1000000000L + ts[1];
}

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
	long now = now_ns();
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
	struct ksigaction a = {0, SA_RESTORER, sig_restorer, 0};
	if (streq(argv[1], "raise")) {
		a.handler = h_count;
		sys6(13, SIGUSR1, (long)&a, 0, 8, 0, 0);
		long pid = sys3(39, 0, 0, 0);
		long start = now_ns();
		for (long i = 0; i < n; i++)
			sys3(62, pid, SIGUSR1, 0);
		long ns = now_ns() - start;
		if (count != n)
			return 2;
		puts_("ns_per_raise ");
		putn(ns / n);
		puts_("\n");
		return 0;
	}
	if (!streq(argv[1], "delay"))
		return 101;
	a.handler = h_alarm;
	sys6(13, SIGALRM, (long)&a, 0, 8, 0, 0);
	/* sigevent: value, signo, notify (SIGEV_SIGNAL), padding. */
	long sev[8] = {0};
	((int *)sev)[2] = SIGALRM;
	if (sys3(222, 1, sev, &timer) != 0) /* timer_create(CLOCK_MONOTONIC) */
		return 3;
	t0 = now_ns();
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

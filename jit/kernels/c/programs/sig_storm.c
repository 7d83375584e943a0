/* sig_storm N [USEC]: an interval timer sends SIGALRM every USEC
 * microseconds (20 unless given) into N rounds of pure computation (no
 * system call), and the handler counts them. Under a translator the
 * signals come about as fast as it can deliver them: to its context
 * switch as it enters and leaves the code cache, while it single-steps
 * from there into translated code, and while a step's trap is on its way
 * back to the dispatcher. It prints the computation's result, the same
 * at every run, natively or not (not the count, nor whether any signal
 * came before the loop ended, which is timing). */
#include "rt.h"

static volatile long count;

static void tick(int sig) {
	(void)sig;
	count++;
}

int main(int argc, char **argv, char **envp) {
	(void)envp;
	if (argc < 2)
		return 100;
	long n = atol_(argv[1]);
	long usec = argc > 2 ? atol_(argv[2]) : 20;
	if (rt_install(SIGALRM, tick, SA_RESTART, 0) != 0 || rt_setitimer(usec, usec) != 0)
		return 3;
	u64 x = 1;
	for (long i = 0; i < n; i++)
		x = x * 6364136223846793005ul + (u64)i;
	rt_setitimer(0, 0);
	puthex(x);
	puts_("\n");
	return 0;
}

/* blocked: signals sent while blocked (sigprocmask) stay pending and are
 * delivered when unblocked, before sigprocmask returns: lowest number
 * first, and a standard signal sent twice once. */
#include "rt.h"

static int order[8], n;

static void handler(int sig, rt_siginfo *si, void *uc) {
	if (n < 8)
		order[n++] = sig;
}

int main(int argc, char **argv, char **envp) {
	rt_handle(SIGUSR1, handler, 0, 0);
	rt_handle(SIGUSR2, handler, 0, 0);
	u64 set = SIGBIT(SIGUSR1) | SIGBIT(SIGUSR2), old = ~0ul;
	rt_sigprocmask(SIG_BLOCK, &set, &old);
	sayhex("mask before: ", old);
	rt_kill(rt_getpid(), SIGUSR2);
	rt_kill(rt_getpid(), SIGUSR1);
	rt_kill(rt_getpid(), SIGUSR1);
	say("delivered while blocked: ", n);
	sayhex("pending: ", rt_sigpending());
	rt_sigprocmask(SIG_UNBLOCK, &set, &old);
	sayhex("mask at unblock: ", old);
	say("delivered after unblock: ", n);
	for (int i = 0; i < n; i++)
		say("  signal ", order[i]);
	sayhex("pending: ", rt_sigpending());
	return 0;
}

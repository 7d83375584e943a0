/* resethand: SA_RESETHAND: the handler runs once, with the action reset
 * to the default on entry; the second SIGUSR1 kills the process. */
#include "rt.h"

static void handler(int sig, rt_siginfo *si, void *uc) {
	puts_("in the handler\n");
	puts_(rt_handler_of(SIGUSR1) == SIG_DFL ? "  reset to the default: yes\n" : "  reset to the default: no\n");
	puts_(rt_blocked() & SIGBIT(SIGUSR1) ? "  blocked inside: yes\n" : "  blocked inside: no\n");
}

int main(int argc, char **argv, char **envp) {
	rt_handle(SIGUSR1, handler, SA_RESETHAND, 0);
	rt_kill(rt_getpid(), SIGUSR1);
	puts_("after the first SIGUSR1\n");
	rt_kill(rt_getpid(), SIGUSR1);
	puts_("survived the second\n");
	return 0;
}

/* killself: signals sent to the process itself, with handlers: SIGUSR1 by
 * kill, SIGUSR2 by tgkill. The handler runs before the call returns, with
 * its signal blocked, and sees who sent it. */
#include "rt.h"

static void handler(int sig, rt_siginfo *si, void *ucv) {
	rt_ucontext *uc = ucv;
	say("in the handler of signal ", sig);
	say("  si_signo: ", si->si_signo);
	say("  si_code: ", si->si_code);
	puts_(si->u.kill.pid == rt_getpid() ? "  si_pid is ours: yes\n" : "  si_pid is ours: no\n");
	puts_(si->u.kill.uid == (unsigned)rt_getuid() ? "  si_uid is ours: yes\n" : "  si_uid is ours: no\n");
	puts_(rt_blocked() & SIGBIT(sig) ? "  blocked inside: yes\n" : "  blocked inside: no\n");
	puts_(uc->uc_sigmask & SIGBIT(sig) ? "  blocked in uc_sigmask: yes\n" : "  blocked in uc_sigmask: no\n");
}

int main(int argc, char **argv, char **envp) {
	rt_handle(SIGUSR1, handler, 0, 0);
	rt_handle(SIGUSR2, handler, 0, 0);
	puts_("kill SIGUSR1\n");
	say("kill returned ", rt_kill(rt_getpid(), SIGUSR1));
	puts_(rt_blocked() & SIGBIT(SIGUSR1) ? "blocked after: yes\n" : "blocked after: no\n");
	puts_("tgkill SIGUSR2\n");
	say("tgkill returned ", rt_tgkill(rt_getpid(), rt_gettid(), SIGUSR2));
	return 0;
}

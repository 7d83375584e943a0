// signal: handlers (SA_SIGINFO, with the siginfo they get), a blocked
// signal delivered when unblocked, a timer, a fault caught and left by
// siglongjmp, and at last death by SIGTERM's default action.
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

static volatile sig_atomic_t got, code, alarms;
static sigjmp_buf env;

static void onusr(int sig, siginfo_t *si, void *uc) {
	(void)uc;
	got = got * 100 + sig;
	code = si->si_code;
}

static void onalrm(int sig) {
	(void)sig;
	alarms++;
}

static void onsegv(int sig, siginfo_t *si, void *uc) {
	(void)uc;
	(void)si;
	siglongjmp(env, sig);
}

int main(void) {
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = onusr;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	raise(SIGUSR1);
	printf("after raise: got %d si_code %d\n", (int)got, (int)code);

	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, &old);
	kill(getpid(), SIGUSR2);
	sigset_t pend;
	sigpending(&pend);
	printf("blocked: got %d pending %d\n", (int)got, sigismember(&pend, SIGUSR2));
	sigprocmask(SIG_SETMASK, &old, NULL);
	printf("unblocked: got %d si_code %d\n", (int)got, (int)code);

	signal(SIGALRM, onalrm);
	struct itimerval it = {{0, 20000}, {0, 20000}};
	setitimer(ITIMER_REAL, &it, NULL);
	while (alarms < 3)
		pause();
	struct itimerval off = {0};
	setitimer(ITIMER_REAL, &off, NULL);
	printf("alarms %d\n", alarms >= 3);

	sa.sa_sigaction = onsegv;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigaction(SIGSEGV, &sa, NULL);
	for (int i = 0; i < 3; i++) {
		int s = sigsetjmp(env, 1);
		if (s == 0)
			*(volatile int *)(long)(16 * i) = 1;
		printf("fault %d: signal %d\n", i, s);
	}
	fflush(stdout);
	signal(SIGTERM, SIG_DFL);
	raise(SIGTERM);
	puts("not reached");
	return 0;
}

/* alarm: SIGALRM interrupts a loop of pure computation (no system call:
 * it runs from the code cache under a translator); the handler sets the
 * flag the loop waits for. argv[1]: itimer (setitimer, 100 ms: long
 * enough that the loop has started even on a loaded machine) or alarm
 * (alarm, 1 s). */
#include "rt.h"

static volatile int fired;
static int code, signo;

static void ring(int sig, rt_siginfo *si, void *uc) {
	fired++;
	signo = si->si_signo;
	code = si->si_code;
}

int main(int argc, char **argv, char **envp) {
	if (argc < 2)
		return 2;
	rt_handle(SIGALRM, ring, 0, 0);
	if (streq(argv[1], "itimer"))
		rt_setitimer(100000, 0);
	else if (streq(argv[1], "alarm"))
		rt_alarm(1);
	else
		return 2;
	u64 x = 1, n = 0;
	while (!fired) {
		x = x * 6364136223846793005ul + 1442695040888963407ul;
		n++;
	}
	puts_(n > 0 ? "interrupted the loop: yes\n" : "interrupted the loop: no\n");
	say("signals: ", fired);
	say("si_signo: ", signo);
	say("si_code: ", code);
	return x == 0;
}

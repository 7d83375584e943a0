/* restart: a read from an empty pipe, interrupted by SIGALRM (setitimer,
 * 100 ms: long enough that the read has started even on a loaded
 * machine). argv[1]:
 *
 *   restart  SA_RESTART: the read goes on; the first handler arms the
 *            timer again, the second writes a byte to the pipe, which the
 *            restarted read returns
 *   eintr    no SA_RESTART: the read fails with EINTR after the first
 *
 * The timer fires once each time it is armed, so that no signal comes
 * after the read returns, however late the process runs.
 */
#include "rt.h"

static int fds[2];
static volatile int signals;
static int feed;

static void ring(int sig, rt_siginfo *si, void *uc) {
	signals++;
	if (feed && signals == 1)
		rt_setitimer(100000, 0);
	if (feed && signals == 2)
		rt_write(fds[1], "x", 1);
}

int main(int argc, char **argv, char **envp) {
	if (argc < 2)
		return 2;
	u64 flags;
	if (streq(argv[1], "restart"))
		flags = SA_RESTART, feed = 1;
	else if (streq(argv[1], "eintr"))
		flags = 0;
	else
		return 2;
	if (rt_pipe(fds) != 0)
		return 3;
	rt_handle(SIGALRM, ring, flags, 0);
	rt_setitimer(100000, 0);
	char c = 0;
	long r = rt_read(fds[0], &c, 1);
	say("read returned ", r);
	if (r == 1)
		puts_(c == 'x' ? "read the byte: yes\n" : "read the byte: no\n");
	say("signals by then: ", signals);
	return 0;
}

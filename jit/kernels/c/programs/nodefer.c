/* nodefer: a SIGUSR1 handler that sends itself SIGUSR1 once. argv[1]:
 *
 *   nodefer  SA_NODEFER: the second runs nested in the first
 *   defer    the second waits until the first returns
 */
#include "rt.h"

static int depth, calls;

static void handler(int sig, rt_siginfo *si, void *uc) {
	depth++;
	calls++;
	say("enter, depth ", depth);
	if (calls == 1) {
		rt_kill(rt_getpid(), SIGUSR1);
		puts_("  sent again\n");
	}
	say("leave, depth ", depth);
	depth--;
}

int main(int argc, char **argv, char **envp) {
	if (argc < 2)
		return 2;
	if (streq(argv[1], "nodefer"))
		rt_handle(SIGUSR1, handler, SA_NODEFER, 0);
	else if (streq(argv[1], "defer"))
		rt_handle(SIGUSR1, handler, 0, 0);
	else
		return 2;
	rt_kill(rt_getpid(), SIGUSR1);
	say("handler calls: ", calls);
	return 0;
}

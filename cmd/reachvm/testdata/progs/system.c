// system: system(3) runs /bin/sh -c (posix_spawn underneath): its output
// shares the pipe with ours, its status comes back.
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

static void sys(const char *cmd) {
	fflush(stdout);
	int st = system(cmd);
	if (st == -1)
		printf("system failed\n");
	else if (WIFEXITED(st))
		printf("[%s] exited %d\n", cmd, WEXITSTATUS(st));
	else
		printf("[%s] killed by %d\n", cmd, WTERMSIG(st));
}

int main(void) {
	sys("echo from the shell");
	sys("exit 3");
	sys("printf '%s\\n' b c a | sort -r");
	sys("echo to stderr >&2");
	sys("kill -TERM $$");
	printf("a shell is available: %s\n", system(NULL) ? "yes" : "no");
	return 0;
}

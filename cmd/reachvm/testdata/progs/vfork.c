// vfork: vfork then execv of this program (argv[0]) in a child mode, and
// vfork then _exit; the parent waits and reports.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int wait1(pid_t pid) {
	int st;
	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int main(int argc, char **argv) {
	if (argc == 3 && strcmp(argv[1], "child") == 0) {
		printf("child mode: %s\n", argv[2]);
		return atoi(argv[2]);
	}
	printf("parent starts\n");
	fflush(stdout);
	pid_t pid = vfork();
	if (pid == 0) {
		char *args[] = {argv[0], "child", "5", NULL};
		execv(argv[0], args);
		_exit(127);
	}
	printf("exec child: %d\n", wait1(pid));

	volatile int shared = 1;
	pid = vfork();
	if (pid == 0) {
		shared = 2; // vfork shares the parent's memory until _exit
		_exit(9);
	}
	printf("_exit child: %d, shared %d\n", wait1(pid), shared);

	pid = vfork();
	if (pid == 0) {
		char *args[] = {"/nonexistent/program", NULL};
		execv(args[0], args);
		_exit(126);
	}
	printf("failed exec child: %d\n", wait1(pid));
	return 0;
}

// fork: children that exit with a status, write to a pipe, print
// through stdio and die of a signal; the parent waits for each in turn.
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void report(pid_t pid, const char *what) {
	int st;
	if (waitpid(pid, &st, 0) != pid) {
		perror("waitpid");
		exit(2);
	}
	if (WIFEXITED(st))
		printf("%s: exited %d\n", what, WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		printf("%s: killed by signal %d\n", what, WTERMSIG(st));
	// A child's exit() flushes its copy of the buffer: nothing may be
	// waiting in it at the next fork.
	fflush(stdout);
}

int main(void) {
	int before = 5;
	printf("parent starts\n");
	fflush(stdout);

	pid_t pid = fork();
	if (pid == 0) {
		before++; // the parent's copy stays 5
		_exit(7 + before);
	}
	report(pid, "exit child");

	int p[2];
	if (pipe(p) != 0)
		return 2;
	pid = fork();
	if (pid == 0) {
		close(p[0]);
		const char msg[] = "through the pipe";
		write(p[1], msg, sizeof msg);
		_exit(0);
	}
	close(p[1]);
	char buf[64] = {0};
	ssize_t n = read(p[0], buf, sizeof buf - 1);
	printf("read %zd bytes: %s\n", n, buf);
	fflush(stdout);
	report(pid, "pipe child");

	pid = fork();
	if (pid == 0) {
		printf("child prints through stdio, before=%d\n", before);
		fflush(stdout);
		exit(0);
	}
	report(pid, "stdio child");

	pid = fork();
	if (pid == 0) {
		raise(SIGTERM);
		_exit(99);
	}
	report(pid, "signal child");

	// Grandchildren: the child forks again and reports its own child.
	pid = fork();
	if (pid == 0) {
		pid_t g = fork();
		if (g == 0)
			_exit(3);
		report(g, "grandchild");
		_exit(4);
	}
	report(pid, "middle child");
	printf("parent's before=%d\n", before);
	return 0;
}

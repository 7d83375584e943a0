/* procs, built the ordinary way (the C library linked statically): the
 * C library's ways to start processes and programs. Each mode prints what
 * it observes, deterministically (stdout fully buffered, flushed before
 * any child could write).
 *
 *   fork       fork + waitpid; the child inherits the unflushed buffer
 *   vfork      vfork + execl of /bin/echo
 *   system     system() of a shell command with an exit status
 *   popen      popen for reading and for writing, pclose's status
 *   spawn      posix_spawn of /bin/echo, and of a missing file
 *   pipeline   a shell pipeline through system()
 *   sigign     SIGCHLD ignored: children are reaped by the kernel, wait
 *              fails with ECHILD
 *   nocldwait  SA_NOCLDWAIT with a handler: the same, and the handler runs
 *   exec SELF  execve of SELF show with its own argv and envp
 *   show       prints argv, the environment and the signal mask
 */
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void status(const char *who, int st) {
	if (WIFEXITED(st))
		printf("%s: exited %d\n", who, WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		printf("%s: killed by signal %d\n", who, WTERMSIG(st));
	else
		printf("%s: status %#x\n", who, st);
	fflush(stdout);
}

static volatile sig_atomic_t chld;
static void on_chld(int sig) { chld++; }

/* reaped waits for every child: the kernel reaped them when wait fails
 * with ECHILD at once. */
static void reaped(const char *who, pid_t pid) {
	int st;
	pid_t r = waitpid(pid, &st, 0);
	printf("%s: waitpid %s, errno %s\n", who, r == pid ? "got the child" : "failed",
	       r < 0 && errno == ECHILD ? "ECHILD" : "other");
}

int main(int argc, char **argv) {
	if (argc < 2)
		return 2;
	const char *m = argv[1];
	static char buf[4096];
	setvbuf(stdout, buf, _IOFBF, sizeof buf);
	if (!strcmp(m, "fork")) {
		printf("before fork, buffered\n");
		pid_t pid = fork();
		if (pid == 0) {
			printf("child: a new process %d\n", getppid() != getpid());
			exit(7);
		}
		int st;
		waitpid(pid, &st, 0);
		status("fork", st);
	} else if (!strcmp(m, "vfork")) {
		fflush(stdout);
		pid_t pid = vfork();
		if (pid == 0) {
			execl("/bin/echo", "echo", "from", "vfork", (char *)0);
			_exit(127);
		}
		int st;
		waitpid(pid, &st, 0);
		status("vfork", st);
	} else if (!strcmp(m, "system")) {
		fflush(stdout);
		status("system", system("echo from system; exit 3"));
		status("system true", system("true"));
	} else if (!strcmp(m, "popen")) {
		FILE *f = popen("echo popen line one; echo popen line two", "r");
		char line[256];
		while (fgets(line, sizeof line, f))
			printf("read: %s", line);
		status("pclose r", pclose(f));
		f = popen("tr a-z A-Z", "w");
		fputs("written through popen\n", f);
		status("pclose w", pclose(f));
	} else if (!strcmp(m, "spawn")) {
		char *av[] = {"echo", "posix_spawn", "works", NULL};
		pid_t pid;
		fflush(stdout);
		int r = posix_spawn(&pid, "/bin/echo", NULL, NULL, av, environ);
		int st;
		waitpid(pid, &st, 0);
		printf("posix_spawn: %d\n", r);
		status("spawn", st);
		r = posix_spawn(&pid, "/nonexistent/program", NULL, NULL, av, environ);
		printf("posix_spawn of a missing file: %s\n", r == ENOENT ? "ENOENT" : "another error");
		fflush(stdout);
		r = posix_spawnp(&pid, "echo", NULL, NULL, av, environ);
		waitpid(pid, &st, 0);
		status("spawnp", st);
	} else if (!strcmp(m, "pipeline")) {
		fflush(stdout);
		status("pipeline", system("printf 'b\\na\\nc\\n' | sort | tr a-z A-Z"));
	} else if (!strcmp(m, "sigign")) {
		signal(SIGCHLD, SIG_IGN);
		pid_t pid = fork();
		if (pid == 0)
			_exit(3);
		reaped("SIG_IGN", pid);
	} else if (!strcmp(m, "nocldwait")) {
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = on_chld;
		sa.sa_flags = SA_NOCLDWAIT;
		sigaction(SIGCHLD, &sa, NULL);
		pid_t pid = fork();
		if (pid == 0)
			_exit(3);
		reaped("SA_NOCLDWAIT", pid);
		for (int i = 0; i < 1000 && !chld; i++)
			usleep(1000);
		printf("SIGCHLD handled: %d\n", chld);
		/* Back to the default: children wait to be reaped again. */
		signal(SIGCHLD, SIG_DFL);
		pid = fork();
		if (pid == 0)
			_exit(4);
		int st;
		waitpid(pid, &st, 0);
		status("SIG_DFL", st);
	} else if (!strcmp(m, "exec") && argc > 2) {
		char *av[] = {"libc-custom0", "show", "an argument", NULL};
		char *ev[] = {"A=1", "B=with spaces", NULL};
		signal(SIGTERM, SIG_IGN);
		sigset_t set;
		sigemptyset(&set);
		sigaddset(&set, SIGUSR2);
		sigprocmask(SIG_BLOCK, &set, NULL);
		fflush(stdout);
		execve(argv[2], av, ev);
		printf("execve failed: %d\n", errno);
		return 1;
	} else if (!strcmp(m, "show")) {
		for (int i = 0; i < argc; i++)
			printf("argv[%d] \"%s\"\n", i, argv[i]);
		for (char **e = environ; *e; e++)
			printf("env \"%s\"\n", *e);
		sigset_t set;
		sigprocmask(SIG_BLOCK, NULL, &set);
		printf("SIGUSR2 blocked: %d\n", sigismember(&set, SIGUSR2));
		struct sigaction sa;
		sigaction(SIGTERM, NULL, &sa);
		printf("SIGTERM ignored: %d\n", sa.sa_handler == SIG_IGN);
	} else
		return 2;
	return 0;
}

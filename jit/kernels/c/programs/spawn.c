/*
 * spawn: runs a program as its child, with a real fork, and reports the
 * child's peak resident set size and CPU time; reachvm bench programs
 * starts every measured run through it.
 *
 * Go starts a child with clone(CLONE_VM|CLONE_VFORK), and at execve the
 * kernel carries the high-water RSS of the memory being left (here, the
 * Go process's) into the new program's ru_maxrss: a program Go starts
 * directly reports at least Go's own peak. Forked from this small
 * process, it reports its own.
 *
 * usage: spawn FD PROG [ARGS...]: runs PROG (a path) with ARGS and this
 * environment, writes "MAXRSS_KIB UTIME_US STIME_US\n" to FD when it has
 * ended, and ends as it did: the same exit status, or death by the same
 * signal. The child dies with spawn (PR_SET_PDEATHSIG): a timeout that
 * kills spawn kills the run.
 */
#include "rt.h"

/* struct rusage: two timevals, then ru_maxrss and thirteen more longs. */
struct rt_rusage {
	long utime_s, utime_us, stime_s, stime_us;
	long maxrss;
	long rest_[13];
};

static char *fmt(char *p, long v) {
	char b[24];
	int i = 0;
	do
		b[i++] = '0' + v % 10;
	while ((v /= 10) > 0);
	while (i > 0)
		*p++ = b[--i];
	return p;
}

int main(int argc, char **argv, char **envp) {
	if (argc < 3)
		return 125;
	long fd = atol_(argv[1]);
	long ppid = rt_getpid();
	long pid = sys6(56 /* clone */, 17 /* SIGCHLD alone: a fork */, 0, 0, 0, 0, 0);
	if (pid < 0)
		return 125;
	if (pid == 0) {
		sys3(157 /* prctl */, 1 /* PR_SET_PDEATHSIG */, SIGKILL, 0);
		if (sys3(110 /* getppid */, 0, 0, 0) != ppid)
			return 125; /* spawn died before the prctl */
		rt_close(fd);
		sys3(59 /* execve */, argv[2], argv + 2, envp);
		return 127;
	}
	int status = 0;
	struct rt_rusage ru;
	long r;
	do
		r = sys6(61 /* wait4 */, pid, (long)&status, 0, (long)&ru, 0, 0);
	while (r == -EINTR);
	if (r != pid)
		return 125;
	char line[80], *p = line;
	p = fmt(p, ru.maxrss);
	*p++ = ' ';
	p = fmt(p, ru.utime_s * 1000000 + ru.utime_us);
	*p++ = ' ';
	p = fmt(p, ru.stime_s * 1000000 + ru.stime_us);
	*p++ = '\n';
	rt_write(fd, line, p - line);
	rt_close(fd);
	int sig = status & 0x7f;
	if (sig == 0)
		return (status >> 8) & 0xff;
	/* Die of the same signal: its default action, unblocked, without a
	 * core of spawn's own. */
	long nocore[2] = {0, 0};
	sys6(302 /* prlimit64 */, 0, 4 /* RLIMIT_CORE */, (long)nocore, 0, 0, 0);
	struct rt_kaction dfl = {SIG_DFL, 0, 0, 0};
	rt_sigaction(sig, &dfl, 0);
	u64 set = SIGBIT(sig);
	rt_sigprocmask(SIG_UNBLOCK, &set, 0);
	rt_kill(rt_getpid(), sig);
	return 128 + sig;
}

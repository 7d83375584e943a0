/* proccalls: the process calls ld.so and libc make as a program starts,
 * one line each, for comparison with a native run: set_tid_address
 * (returns the thread id), set_robust_list, rseq (its result alone: it
 * fails with ENOSYS under reachvm), the stack limit (getrlimit,
 * prlimit64, a soft limit set and read back), readlink and readlinkat
 * of the process's executable in /proc (compared with argv[1], the
 * path the executable's link should give) and open of it, getrandom,
 * clock_gettime,
 * a futex wake with no waiter. */
#include "rt.h"

static int same(const char *a, long n, const char *b) {
	for (long i = 0; i < n; i++)
		if (a[i] != b[i])
			return 0;
	return b[n] == 0;
}

/* fmt writes "/proc/<n>/exe" (or with a task part) into b. */
static void fmt(char *b, long pid, long tid) {
	const char *parts[] = {"/proc/", 0, "/task/", 0, "/exe"};
	char num[2][24];
	long v[2] = {pid, tid};
	for (int k = 0; k < 2; k++) {
		int i = 23;
		num[k][i] = 0;
		do
			num[k][--i] = '0' + v[k] % 10, v[k] /= 10;
		while (v[k]);
		parts[1 + 2 * k] = num[k] + i;
	}
	int n = 0;
	for (int k = 0; k < 5; k++) {
		if (k >= 2 && k <= 3 && !tid)
			continue;
		for (const char *s = parts[k]; *s; s++)
			b[n++] = *s;
	}
	b[n] = 0;
}

int main(int argc, char **argv, char **envp) {
	if (argc < 2)
		return 2;
	static int tid_word;
	long tid = sys3(218, &tid_word, 0, 0); /* set_tid_address */
	line("set_tid_address_is_tid", tid == rt_gettid());
	static long robust[3];
	robust[0] = (long)robust;
	line("set_robust_list", sys3(273, robust, 24, 0));
	line("set_robust_list_badlen", sys3(273, robust, 23, 0));
	static char rseq_area[64] __attribute__((aligned(32)));
	line("rseq", sys6(334, (long)rseq_area, 32, 0, 0x53053053, 0, 0));

	u64 lim[2] = {0, 0}, lim2[2] = {0, 0};
	line("getrlimit", sys3(97, 3, lim, 0));
	line("stack_cur_mib", (long)(lim[0] >> 20));
	sys6(302, 0, 3, 0, (long)lim2, 0, 0);
	line("prlimit_agrees", lim[0] == lim2[0] && lim[1] == lim2[1]);
	u64 set[2] = {4 << 20, lim[1]};
	line("prlimit_set", sys6(302, 0, 3, (long)set, (long)lim2, 0, 0));
	line("prlimit_old_mib", (long)(lim2[0] >> 20));
	sys3(97, 3, lim2, 0);
	line("stack_after_set_mib", (long)(lim2[0] >> 20));
	u64 bad[2] = {lim[1] == ~0ul ? ~0ul : lim[1] + 1, lim[1]};
	if (lim[1] != ~0ul)
		line("setrlimit_over_max", sys3(160, 3, bad, 0));
	sys3(160, 3, lim, 0);
	u64 nofile[2];
	line("getrlimit_nofile", sys3(97, 7, nofile, 0));
	u64 nofile2[2];
	sys6(302, 0, 7, 0, (long)nofile2, 0, 0);
	line("nofile_agrees", nofile[0] == nofile2[0] && nofile[1] == nofile2[1]);

	char buf[4096], path[64];
	long n = sys3(89, "/proc/self/exe", buf, sizeof buf);
	line("readlink_self_is_argv1", n > 0 && same(buf, n, argv[1]));
	fmt(path, rt_getpid(), 0);
	n = sys3(89, path, buf, sizeof buf);
	line("readlink_pid_is_argv1", n > 0 && same(buf, n, argv[1]));
	fmt(path, rt_getpid(), rt_gettid());
	n = sys3(89, path, buf, sizeof buf);
	line("readlink_task_is_argv1", n > 0 && same(buf, n, argv[1]));
	n = sys6(267, -100, (long)"/proc/thread-self/exe", (long)buf, sizeof buf, 0, 0);
	line("readlinkat_thread_self_is_argv1", n > 0 && same(buf, n, argv[1]));
	n = sys3(89, "/proc/self/exe", buf, 4);
	line("readlink_short", n);
	line("readlink_short_prefix", n == 4 && buf[0] == argv[1][0] && buf[3] == argv[1][3]);
	line("readlink_zero", sys3(89, "/proc/self/exe", buf, 0));
	line("readlink_efault", sys3(89, "/proc/self/exe", 0, 16));
	line("readlink_other", sys3(89, "/proc/self/cwd", buf, sizeof buf) > 0);
	line("readlink_missing", sys3(89, "/nonexistent/proccalls", buf, sizeof buf));

	/* The executable opened through /proc: the same file as argv[1]
	 * (fstat's device and inode). */
	long st1[18], st2[18];
	long fd = sys3(2, "/proc/self/exe", 0, 0);
	long fd2 = sys6(257, -100, (long)argv[1], 0, 0, 0, 0);
	line("open_exe", fd >= 0 && fd2 >= 0);
	sys3(5, fd, st1, 0);
	sys3(5, fd2, st2, 0);
	line("open_exe_same_file", st1[0] == st2[0] && st1[1] == st2[1]);
	rt_close(fd);
	rt_close(fd2);
	fd = sys6(257, -100, (long)"/proc/self/exe", 0, 0, 0, 0);
	sys3(5, fd, st1, 0);
	line("openat_exe_same_file", fd >= 0 && st1[0] == st2[0] && st1[1] == st2[1]);
	rt_close(fd);

	unsigned char r[32];
	line("getrandom", sys3(318, r, sizeof r, 0));
	long ts[2] = {-1, -1};
	line("clock_gettime", sys3(228, 1, ts, 0));
	line("clock_sane", ts[0] >= 0 && ts[1] >= 0 && ts[1] < 1000000000);
	static int fword;
	line("futex_wake", sys6(202, (long)&fword, 1 | 128, 1, 0, 0, 0));
	return 3;
}

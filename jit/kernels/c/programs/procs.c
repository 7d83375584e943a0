/* procs: new processes and new programs, with raw system calls. Each
 * mode prints what it observes, deterministically: a child prints before
 * it exits and its parent prints after it waited for it.
 *
 *   fork          fork + wait4: the child's output and exit status
 *   killed        a child killed by SIGTERM: the parent sees the signal
 *   vfork         vfork + execve of /bin/echo in the child
 *   clone         clone(SIGCHLD) without CLONE_VM, no new stack
 *   clonestack    clone(SIGCHLD) with a new stack and a child function
 *   spawn         clone(CLONE_VM|CLONE_VFORK|SIGCHLD) with a new stack, the
 *                 child execs /bin/echo (posix_spawn's way)
 *   clone3        the same through clone3, as glibc's posix_spawn calls it
 *   signal        the child has the parent's handlers, mask, ignored
 *                 signals and alternate stack, and takes a signal through
 *                 the parent's handler; the parent gets SIGCHLD
 *   pipe          the child writes into a pipe the parent reads to EOF
 *   eintr         a child's exit (SIGCHLD, ignored) while the parent
 *                 blocks in read: the read is not interrupted
 *   regs          registers, flags and vector registers after fork, in
 *                 the child and in the parent
 *   forkexec PATH the child execs PATH show (natively: it is detached)
 *   exec PATH     execve(PATH, {"custom0", "show", ...}, custom envp)
 *                 with a handler, an ignored and a blocked signal
 *   show          prints argv, envp, AT_EXECFN, the mask and the
 *                 dispositions of SIGTERM and SIGUSR1
 *   script SELF DIR   execve of a #! script DIR/script whose interpreter
 *                 is SELF show
 *   execerr DIR   execve failing: no file, a directory, a file without x,
 *                 an unknown format, a missing interpreter, a bad argv
 *   forkloop N    N times fork + exit + wait4 (the benchmark)
 */
#include "rt.h"

#define SIGCHLD 17
#define CLONE_VFORK 0x4000
#define WNOHANG 1

static long rt_fork(void) { return sys3(57, 0, 0, 0); }
static long rt_vfork_exec(const char *path, char *const *argv, char *const *envp);
static long rt_wait(long pid, int *status) { return sys6(61, pid, (long)status, 0, 0, 0, 0); }
static long rt_execve(const char *path, char *const *argv, char *const *envp) { return sys3(59, path, argv, envp); }
static long rt_getppid(void) { return sys3(110, 0, 0, 0); }
static long rt_open(const char *p, int flags, int mode) { return sys3(2, p, flags, mode); }
static long rt_unlink(const char *p) { return sys3(87, p, 0, 0); }
/* struct clone_args (the first 64 bytes). */
struct clone_args {
	u64 flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
};

/* rt_clone3(args, fn, arg): clone3 with args, whose stack's top 16
 * bytes carry fn and arg to the child, as for rt_clone. */
long rt_clone3(struct clone_args *a, long size, int (*fn)(void *), void *arg) __attribute__((visibility("hidden")));
__asm__(".text\n.globl rt_clone3\n.hidden rt_clone3\n.type rt_clone3, @function\nrt_clone3:\n"
	"\tmov 40(%rdi), %rax\n\tadd 48(%rdi), %rax\n\tmov %rdx, -16(%rax)\n\tmov %rcx, -8(%rax)\n"
	"\tsubq $16, 48(%rdi)\n"
	"\tmov $435, %eax\n\tsyscall\n\ttest %rax, %rax\n\tjnz 1f\n"
	"\tpop %rax\n\tpop %rdi\n\tcall *%rax\n\tmov %eax, %edi\n\tmov $60, %eax\n\tsyscall\n\thlt\n"
	"1:\tret\n");

static char child_stack[64 * 1024] __attribute__((aligned(16)));

static void report(const char *who, long pid, int status) {
	puts_(who);
	if (pid < 0) {
		say(": wait4 failed ", pid);
		return;
	}
	if ((status & 0x7f) == 0)
		say(": child exited ", (status >> 8) & 0xff);
	else
		say(": child killed by signal ", status & 0x7f);
}

static long wait_report(long pid) {
	int status = 0;
	long r = rt_wait(pid, &status);
	report("parent", r == pid ? r : -1, status);
	return r;
}

static int do_fork(void) {
	long parent = rt_getpid();
	long pid = rt_fork();
	if (pid < 0) {
		say("fork failed ", pid);
		return 1;
	}
	if (pid == 0) {
		puts_(rt_getpid() != parent ? "child: a new pid\n" : "child: the parent's pid\n");
		puts_(rt_getppid() == parent ? "child: getppid is the parent\n" : "child: getppid is not the parent\n");
		rt_exit(3);
	}
	wait_report(pid);
	int status;
	say("parent: wait4 again ", rt_wait(-1, &status));
	return 0;
}

static int do_killed(void) {
	long pid = rt_fork();
	if (pid == 0) {
		rt_kill(rt_getpid(), SIGTERM);
		rt_exit(9);
	}
	wait_report(pid);
	return 0;
}

static char *echo_argv[] = {"echo", "from", "the", "child", 0};
static char *no_env[] = {0};

static int do_vfork(void) {
	long pid = rt_vfork_exec("/bin/echo", echo_argv, no_env);
	if (pid < 0) {
		say("vfork failed ", pid);
		return 1;
	}
	wait_report(pid);
	return 0;
}

/* vfork must return into a frame the child did not pop: an assembly
 * wrapper that makes the call, and in the child execs and exits. */
long rt_vfork_exec_(const char *path, char *const *argv, char *const *envp) __attribute__((visibility("hidden")));
__asm__(".text\n.globl rt_vfork_exec_\n.hidden rt_vfork_exec_\n.type rt_vfork_exec_, @function\nrt_vfork_exec_:\n"
	"\tmov $58, %eax\n\tsyscall\n\ttest %rax, %rax\n\tjnz 1f\n"
	"\tmov $59, %eax\n\tsyscall\n\tmov $127, %edi\n\tmov $60, %eax\n\tsyscall\n\thlt\n"
	"1:\tret\n");
static long rt_vfork_exec(const char *path, char *const *argv, char *const *envp) { return rt_vfork_exec_(path, argv, envp); }

static int clone_child(void *arg) {
	puts_("child: on the new stack ");
	char here;
	puts_(&here > child_stack && &here < child_stack + sizeof child_stack ? "yes\n" : "no\n");
	puts_((const char *)arg);
	return 5;
}

static int do_clone(int stack) {
	long pid;
	if (stack) {
		pid = rt_clone(SIGCHLD, child_stack + sizeof child_stack, 0, 0, 0, clone_child, "child: arg passed\n");
	} else {
		pid = sys6(56, SIGCHLD, 0, 0, 0, 0, 0);
		if (pid == 0) {
			puts_("child: cloned\n");
			rt_exit(6);
		}
	}
	if (pid < 0) {
		say("clone failed ", pid);
		return 1;
	}
	wait_report(pid);
	return 0;
}

static int spawn_child(void *arg) {
	rt_execve("/bin/echo", (char *const *)arg, no_env);
	return 127;
}

static char *spawn_argv[] = {"echo", "spawned", 0};

static int do_spawn(int three) {
	long pid;
	if (three) {
		struct clone_args a = {CLONE_VM | CLONE_VFORK, 0, 0, 0, SIGCHLD, (u64)child_stack, sizeof child_stack, 0};
		pid = rt_clone3(&a, sizeof a, spawn_child, spawn_argv);
	} else {
		pid = rt_clone(CLONE_VM | CLONE_VFORK | SIGCHLD, child_stack + sizeof child_stack, 0, 0, 0, spawn_child, spawn_argv);
	}
	if (pid < 0) {
		say("spawn failed ", pid);
		return 1;
	}
	wait_report(pid);
	return 0;
}

static char altstack[16384] __attribute__((aligned(16)));
static volatile int usr1, chld, chld_code, chld_status;
static volatile long chld_pid;
static volatile int usr1_onstack;

static void on_usr1(int sig, rt_siginfo *si, void *uc) {
	char here;
	usr1++;
	usr1_onstack = &here > altstack && &here < altstack + sizeof altstack;
}

static void on_chld(int sig, rt_siginfo *si, void *uc) {
	chld++;
	chld_code = si->si_code;
	chld_pid = si->u.kill.pid;
	chld_status = (int)si->u.kill.value;
}

static int do_signal(void) {
	rt_stack ss = {altstack, 0, sizeof altstack};
	rt_sigaltstack(&ss, 0);
	rt_handle(SIGUSR1, on_usr1, SA_ONSTACK, SIGBIT(SIGUSR2));
	rt_handle(SIGCHLD, on_chld, SA_RESTART, 0);
	rt_install(SIGTERM, SIG_IGN, 0, 0);
	u64 block = SIGBIT(SIGUSR2);
	rt_sigprocmask(SIG_BLOCK, &block, 0);
	long pid = rt_fork();
	if (pid == 0) {
		struct rt_kaction a = {0, 0, 0, 0};
		rt_sigaction(SIGUSR1, 0, &a);
		puts_(a.handler == (void *)on_usr1 ? "child: the SIGUSR1 handler is the parent's\n" : "child: another SIGUSR1 handler\n");
		sayhex("child: SIGUSR1 flags ", a.flags);
		sayhex("child: SIGUSR1 mask ", a.mask);
		puts_(a.restorer == rt_restorer ? "child: the restorer is the parent's\n" : "child: another restorer\n");
		puts_(rt_handler_of(SIGTERM) == SIG_IGN ? "child: SIGTERM ignored\n" : "child: SIGTERM not ignored\n");
		puts_(rt_handler_of(SIGINT) == SIG_DFL ? "child: SIGINT default\n" : "child: SIGINT not default\n");
		puts_(rt_handler_of(SIGSEGV) == SIG_DFL ? "child: SIGSEGV default\n" : "child: SIGSEGV not default\n");
		/* No handler but the parent's: none of a translator's. */
		int others = 0;
		for (int sig = 1; sig <= 64; sig++)
			if (sig != SIGKILL && sig != 19 && sig != SIGUSR1 && sig != SIGCHLD && sig != SIGTERM &&
			    rt_handler_of(sig) != SIG_DFL)
				others++;
		say("child: other signals not SIG_DFL ", others);
		sayhex("child: blocked ", rt_blocked());
		rt_stack old = {0, 0, 0};
		rt_sigaltstack(0, &old);
		puts_(old.ss_sp == altstack && old.ss_size == sizeof altstack ? "child: the parent's alternate stack\n" : "child: another alternate stack\n");
		say("child: alternate stack flags ", old.ss_flags);
		rt_kill(rt_getpid(), SIGUSR1);
		say("child: SIGUSR1 handled ", usr1);
		say("child: on the alternate stack ", usr1_onstack);
		rt_kill(rt_getpid(), SIGTERM);
		puts_("child: SIGTERM ignored, still here\n");
		rt_kill(rt_getpid(), SIGUSR2);
		sayhex("child: pending ", rt_sigpending());
		rt_exit(4);
	}
	int status = 0;
	long r = rt_wait(pid, &status);
	report("parent", r == pid ? r : -1, status);
	/* SIGCHLD: natively handled on the way out of wait4 at the
	 * latest; a translator may take a moment. */
	for (int i = 0; i < 1000 && !chld; i++)
		rt_sleep_ms(1);
	say("parent: SIGCHLD handled ", chld);
	say("parent: CLD_EXITED ", chld_code == 1);
	say("parent: si_pid is the child ", chld_pid == pid);
	say("parent: si_status ", chld_status);
	rt_kill(rt_getpid(), SIGUSR1);
	say("parent: SIGUSR1 handled ", usr1);
	return 0;
}

static int do_pipe(void) {
	int fds[2];
	if (rt_pipe(fds) != 0)
		return 1;
	long pid = rt_fork();
	if (pid == 0) {
		rt_close(fds[0]);
		const char *msg = "through the pipe, from the child\n";
		rt_write(fds[1], msg, rt_strlen(msg));
		rt_exit(0);
	}
	rt_close(fds[1]);
	char buf[256];
	long n, total = 0;
	while ((n = rt_read(fds[0], buf + total, sizeof buf - 1 - total)) > 0)
		total += n;
	buf[total] = 0;
	puts_("parent read: ");
	puts_(buf);
	say("parent: last read ", n);
	wait_report(pid);
	return 0;
}

static int do_eintr(void) {
	int fds[2];
	if (rt_pipe(fds) != 0)
		return 1;
	long slow = rt_fork();
	if (slow == 0) {
		rt_sleep_ms(200);
		rt_write(fds[1], "late\n", 5);
		rt_exit(0);
	}
	long quick = rt_fork();
	if (quick == 0)
		rt_exit(0);
	char buf[16] = {0};
	long n = rt_read(fds[0], buf, sizeof buf - 1);
	say("parent: read ", n);
	puts_(buf);
	int status;
	rt_wait(quick, &status);
	wait_report(slow);
	return 0;
}

/* regs_fork(avx, out): loads known values into every general register
 * but rsp and rax, xmm0-15 (ymm0-15 with avx), sets DF, forks, and
 * stores what it finds after the call into out (rax..r15 in ModRM order,
 * the flags, then the 16 vector registers, 32 bytes each). */
extern unsigned char regs_after[];
void regs_fork(long avx, u64 *out) __attribute__((visibility("hidden")));
static const u64 vpattern[64] __attribute__((aligned(32))) = {
	0x0101010101010101, 0x0202020202020202, 0x0303030303030303, 0x0404040404040404,
	0x0505050505050505, 0x0606060606060606, 0x0707070707070707, 0x0808080808080808,
	0x0909090909090909, 0x0a0a0a0a0a0a0a0a, 0x0b0b0b0b0b0b0b0b, 0x0c0c0c0c0c0c0c0c,
	0x0d0d0d0d0d0d0d0d, 0x0e0e0e0e0e0e0e0e, 0x0f0f0f0f0f0f0f0f, 0x1010101010101010,
	0x1111111111111111, 0x1212121212121212, 0x1313131313131313, 0x1414141414141414,
	0x1515151515151515, 0x1616161616161616, 0x1717171717171717, 0x1818181818181818,
	0x1919191919191919, 0x1a1a1a1a1a1a1a1a, 0x1b1b1b1b1b1b1b1b, 0x1c1c1c1c1c1c1c1c,
	0x1d1d1d1d1d1d1d1d, 0x1e1e1e1e1e1e1e1e, 0x1f1f1f1f1f1f1f1f, 0x2020202020202020,
	0x2121212121212121, 0x2222222222222222, 0x2323232323232323, 0x2424242424242424,
	0x2525252525252525, 0x2626262626262626, 0x2727272727272727, 0x2828282828282828,
	0x2929292929292929, 0x2a2a2a2a2a2a2a2a, 0x2b2b2b2b2b2b2b2b, 0x2c2c2c2c2c2c2c2c,
	0x2d2d2d2d2d2d2d2d, 0x2e2e2e2e2e2e2e2e, 0x2f2f2f2f2f2f2f2f, 0x3030303030303030,
	0x3131313131313131, 0x3232323232323232, 0x3333333333333333, 0x3434343434343434,
	0x3535353535353535, 0x3636363636363636, 0x3737373737373737, 0x3838383838383838,
	0x3939393939393939, 0x3a3a3a3a3a3a3a3a, 0x3b3b3b3b3b3b3b3b, 0x3c3c3c3c3c3c3c3c,
	0x3d3d3d3d3d3d3d3d, 0x3e3e3e3e3e3e3e3e, 0x3f3f3f3f3f3f3f3f, 0x4040404040404040,
};
#define VLOAD(i) "\tvmovdqu vpattern+" #i "*32(%rip), %ymm" #i "\n"
#define XLOAD(i) "\tmovdqu vpattern+" #i "*32(%rip), %xmm" #i "\n"
#define VSTORE(i) "\tvmovdqu %ymm" #i ", 136+" #i "*32(%r11)\n"
#define XSTORE(i) "\tmovdqu %xmm" #i ", 136+" #i "*32(%r11)\n"
#define ALL(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)
__asm__(".text\n.globl regs_fork\n.hidden regs_fork\n.type regs_fork, @function\nregs_fork:\n"
	"\tpush %rbx\n\tpush %rbp\n\tpush %r12\n\tpush %r13\n\tpush %r14\n\tpush %r15\n"
	"\tpush %rsi\n" /* out, at 0(%rsp) */
	"\ttest %rdi, %rdi\n\tjz 1f\n" ALL(VLOAD) "\tjmp 2f\n1:\n" ALL(XLOAD) "2:\n"
	"\tmovabs $0x1111111111111111, %rbx\n\tmovabs $0x2222222222222222, %rbp\n"
	"\tmovabs $0x3333333333333333, %rdx\n\tmovabs $0x4444444444444444, %rsi\n"
	"\tmovabs $0x5555555555555555, %rdi\n\tmovabs $0x6666666666666666, %r8\n"
	"\tmovabs $0x7777777777777777, %r9\n\tmovabs $0x8888888888888888, %r10\n"
	"\tmovabs $0x9999999999999999, %r12\n\tmovabs $0xaaaaaaaaaaaaaaaa, %r13\n"
	"\tmovabs $0xbbbbbbbbbbbbbbbb, %r14\n\tmovabs $0xcccccccccccccccc, %r15\n"
	"\tstd\n\tmov $57, %eax\n\tsyscall\n"
	".globl regs_after\n.hidden regs_after\nregs_after:\n"
	"\tpushfq\n\tcld\n"
	"\tpush %r11\n\tmov 16(%rsp), %r11\n" /* out */
	"\tmov %rax, 0(%r11)\n\tmov %rcx, 8(%r11)\n\tmov %rdx, 16(%r11)\n\tmov %rbx, 24(%r11)\n"
	"\tmov %rbp, 40(%r11)\n\tmov %rsi, 48(%r11)\n\tmov %rdi, 56(%r11)\n"
	"\tmov %r8, 64(%r11)\n\tmov %r9, 72(%r11)\n\tmov %r10, 80(%r11)\n"
	"\tmov %r12, 96(%r11)\n\tmov %r13, 104(%r11)\n\tmov %r14, 112(%r11)\n\tmov %r15, 120(%r11)\n"
	"\tpop %rax\n\tmov %rax, 88(%r11)\n" /* r11 */
	"\tpop %rax\n\tmov %rax, 128(%r11)\n" /* flags */
	/* The store form by the avx flag the caller left after the
	 * vectors in out (rdi, which held it, was overwritten). */
	"\tcmpq $0, 648(%r11)\n\tjz 3f\n" ALL(VSTORE) "\tjmp 4f\n3:\n" ALL(XSTORE) "4:\n"
	"\tpop %rsi\n\tpop %r15\n\tpop %r14\n\tpop %r13\n\tpop %r12\n\tpop %rbp\n\tpop %rbx\n\tret\n");

static u64 regs_out[17 + 64 + 8] __attribute__((aligned(32)));

static int has_avx(void) {
	unsigned a, b, c, d;
	__asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
	if (!(c & (1u << 27)) || !(c & (1u << 28)))
		return 0;
	unsigned lo, hi;
	__asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return (lo & 6) == 6;
}

static void check_regs(const char *who, long avx) {
	static const char *names[] = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
				      "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"};
	static const u64 want[16] = {0, 0, 0x3333333333333333, 0x1111111111111111, 0, 0x2222222222222222,
				     0x4444444444444444, 0x5555555555555555, 0x6666666666666666, 0x7777777777777777,
				     0x8888888888888888, 0, 0x9999999999999999, 0xaaaaaaaaaaaaaaaa,
				     0xbbbbbbbbbbbbbbbb, 0xcccccccccccccccc};
	int bad = 0;
	for (int i = 2; i < 16; i++) {
		if (i == 4 || i == 11)
			continue;
		if (regs_out[i] != want[i]) {
			puts_(who);
			puts_(": ");
			puts_(names[i]);
			sayhex(" is ", regs_out[i]);
			bad++;
		}
	}
	if (regs_out[1] != (u64)regs_after) {
		puts_(who);
		puts_(": rcx is not the return address\n");
		bad++;
	}
	u64 flags = regs_out[16];
	if (!(flags & 0x400)) {
		puts_(who);
		puts_(": DF clear\n");
		bad++;
	}
	if ((regs_out[11] & 0xcd5) != (flags & 0xcd5)) {
		puts_(who);
		sayhex(": r11 is not the flags: ", regs_out[11]);
		bad++;
	}
	const u64 *v = regs_out + 17;
	for (int i = 0; i < 16; i++) {
		int words = avx ? 4 : 2;
		for (int w = 0; w < words; w++)
			if (v[4 * i + w] != vpattern[4 * i + w]) {
				puts_(who);
				say(": vector register differs: ", i);
				bad++;
				break;
			}
	}
	puts_(who);
	puts_(bad ? ": registers differ\n" : ": registers as before the call\n");
}

static int do_regs(void) {
	long avx = has_avx();
	regs_out[17 + 64] = avx; /* read by regs_fork after the call */
	regs_fork(avx, regs_out);
	long pid = (long)regs_out[0];
	if (pid == 0) {
		check_regs("child", avx);
		rt_exit(0);
	}
	if (pid < 0) {
		say("fork failed ", pid);
		return 1;
	}
	int status;
	rt_wait(pid, &status);
	check_regs("parent", avx);
	report("parent", pid, status);
	return 0;
}

static char *exec_env[] = {"X=1", "EMPTY=", "Y=two words", 0};

static void prepare_exec(void) {
	rt_handle(SIGUSR1, on_usr1, 0, 0);
	rt_install(SIGTERM, SIG_IGN, 0, 0);
	u64 block = SIGBIT(SIGUSR2) | SIGBIT(SIGHUP);
	rt_sigprocmask(SIG_BLOCK, &block, 0);
}

static int do_exec(const char *path) {
	char *argv[] = {"custom0", "show", "a b", "", "last", 0};
	prepare_exec();
	long r = rt_execve(path, argv, exec_env);
	say("execve failed ", r);
	return 1;
}

static int do_forkexec(const char *path) {
	char *argv[] = {"forked0", "show", "from", "a child", 0};
	prepare_exec();
	long pid = rt_fork();
	if (pid == 0) {
		rt_execve(path, argv, exec_env);
		rt_exit(127);
	}
	wait_report(pid);
	return 0;
}

static int do_show(int argc, char **argv, char **envp) {
	say("argc ", argc);
	for (int i = 0; i < argc; i++) {
		puts_("argv[");
		putn(i);
		puts_("] \"");
		puts_(argv[i]);
		puts_("\"\n");
	}
	char **e = envp;
	for (; *e; e++) {
		puts_("env \"");
		puts_(*e);
		puts_("\"\n");
	}
	for (u64 *aux = (u64 *)(e + 1); aux[0]; aux += 2)
		if (aux[0] == 31) {
			puts_("AT_EXECFN ");
			puts_((const char *)aux[1]);
			puts_("\n");
		}
	sayhex("blocked ", rt_blocked());
	puts_(rt_handler_of(SIGTERM) == SIG_IGN ? "SIGTERM ignored\n" : "SIGTERM not ignored\n");
	puts_(rt_handler_of(SIGUSR1) == SIG_DFL ? "SIGUSR1 default\n" : "SIGUSR1 not default\n");
	return 0;
}

/* path_join writes dir/name into b. */
static char *path_join(char *b, const char *dir, const char *name) {
	char *p = b;
	while (*dir)
		*p++ = *dir++;
	*p++ = '/';
	while (*name)
		*p++ = *name++;
	*p = 0;
	return b;
}

static long write_file(const char *path, const char *text, int mode) {
	rt_unlink(path);
	long fd = rt_open(path, 01 | 0100 | 01000, mode); /* O_WRONLY|O_CREAT|O_TRUNC */
	if (fd < 0)
		return fd;
	rt_write(fd, text, rt_strlen(text));
	rt_close(fd);
	return 0;
}

static int do_script(const char *self, const char *dir) {
	char script[512], text[600];
	path_join(script, dir, "script");
	char *t = text;
	for (const char *s = "#!"; *s;)
		*t++ = *s++;
	for (const char *s = self; *s;)
		*t++ = *s++;
	for (const char *s = "  show  \nnot read\n"; *s;)
		*t++ = *s++;
	*t = 0;
	if (write_file(script, text, 0755) != 0)
		return 1;
	char *argv[] = {"s0", "x", "y z", 0};
	long r = rt_execve(script, argv, exec_env);
	say("execve failed ", r);
	return 1;
}

static int do_execerr(const char *dir) {
	char *argv[] = {"x", 0};
	char p[512];
	say("missing file ", rt_execve("/nonexistent/procs-test", argv, exec_env));
	say("empty path ", rt_execve("", argv, exec_env));
	say("a directory ", rt_execve("/", argv, exec_env));
	say("through a file ", rt_execve("/bin/sh/x", argv, exec_env));
	path_join(p, dir, "noexec");
	write_file(p, "#!/bin/sh\n", 0644);
	say("no execute permission ", rt_execve(p, argv, exec_env));
	path_join(p, dir, "garbage");
	write_file(p, "this is not a program\n", 0755);
	say("unknown format ", rt_execve(p, argv, exec_env));
	path_join(p, dir, "badinterp");
	write_file(p, "#!/nonexistent/interpreter -x\n", 0755);
	say("missing interpreter ", rt_execve(p, argv, exec_env));
	path_join(p, dir, "nointerp");
	write_file(p, "#!   \n", 0755);
	say("no interpreter ", rt_execve(p, argv, exec_env));
	say("bad argv ", rt_execve("/bin/echo", (char *const *)16, exec_env));
	say("bad path ", rt_execve((const char *)16, argv, exec_env));
	puts_("still running\n");
	return 0;
}

/* forkloop is the benchmark's loop, which the Go benchmark also calls
 * natively: n times fork, the child exits, the parent waits. */
long forkloop(long n) __attribute__((noinline, used));
long forkloop(long n) {
	long ok = 0;
	for (long i = 0; i < n; i++) {
		long pid = rt_fork();
		if (pid == 0)
			rt_exit(0);
		int status;
		if (pid > 0 && rt_wait(pid, &status) == pid && status == 0)
			ok++;
	}
	return ok;
}

int main(int argc, char **argv, char **envp) {
	if (argc < 2)
		return 2;
	const char *m = argv[1];
	if (streq(m, "fork"))
		return do_fork();
	if (streq(m, "killed"))
		return do_killed();
	if (streq(m, "vfork"))
		return do_vfork();
	if (streq(m, "clone"))
		return do_clone(0);
	if (streq(m, "clonestack"))
		return do_clone(1);
	if (streq(m, "spawn"))
		return do_spawn(0);
	if (streq(m, "clone3"))
		return do_spawn(1);
	if (streq(m, "signal"))
		return do_signal();
	if (streq(m, "pipe"))
		return do_pipe();
	if (streq(m, "eintr"))
		return do_eintr();
	if (streq(m, "regs"))
		return do_regs();
	if (streq(m, "show"))
		return do_show(argc, argv, envp);
	if (streq(m, "exec") && argc > 2)
		return do_exec(argv[2]);
	if (streq(m, "forkexec") && argc > 2)
		return do_forkexec(argv[2]);
	if (streq(m, "script") && argc > 3)
		return do_script(argv[2], argv[3]);
	if (streq(m, "execerr") && argc > 2)
		return do_execerr(argv[2]);
	if (streq(m, "forkloop") && argc > 2)
		return forkloop(atol_(argv[2])) == atol_(argv[2]) ? 0 : 1;
	return 2;
}

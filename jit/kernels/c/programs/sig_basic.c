/* sig_basic: the application's own signal handling, one case per
 * argument: handlers with and without SA_SIGINFO, the frame the kernel
 * builds (its layout relative to the handler's stack pointer, the
 * sigcontext and XSAVE fields that do not depend on addresses), default
 * actions, blocking, SA_RESETHAND, SA_NODEFER, a handler that edits
 * uc_mcontext or longjmps out, the alternate stack, sigsuspend,
 * sigtimedwait, the order of nested delivery and the kernel's errors.
 * Every line printed is the same natively and under reachvm. */
#include "rt.h"

#define SIGHUP 1
#define SIGQUIT 3
#define SIGUSR1 10
#define SIGSEGV 11
#define SIGUSR2 12
#define SIGCHLD 17
#define SIGCONT 18
#define SIGALRM 14
#define SIGURG 23
#define SIGWINCH 28
#define SIGKILL 9
#define SIGRT 36

#define SA_SIGINFO 4
#define SA_ONSTACK 0x08000000
#define SA_RESTART 0x10000000
#define SA_NODEFER 0x40000000
#define SA_RESETHAND 0x80000000UL
#define SA_RESTORER 0x04000000
#define SS_ONSTACK 1
#define SS_DISABLE 2
#define SS_AUTODISARM (1U << 31)

#define BIT(s) (1UL << ((s) - 1))

struct ksigaction {
	void *handler;
	unsigned long flags;
	void (*restorer)(void);
	unsigned long mask;
};

typedef struct {
	void *sp;
	int flags;
	unsigned long size;
} stack_t;

struct sigcontext {
	unsigned long r8, r9, r10, r11, r12, r13, r14, r15;
	unsigned long rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp;
	unsigned long rip, eflags;
	unsigned short cs, gs, fs, ss;
	unsigned long err, trapno, oldmask, cr2;
	unsigned char *fpstate;
	unsigned long reserved[8];
};

struct ucontext {
	unsigned long flags;
	struct ucontext *link;
	stack_t stack;
	struct sigcontext mc;
	unsigned long sigmask;
};

typedef struct {
	int signo, errno_, code, pad;
	union {
		struct {
			int pid;
			unsigned uid;
			long value;
		} kill;
		void *addr;
	} u;
	char rest[128 - 40];
} siginfo_t;

extern void sig_restorer(void);
__asm__(".text\n.globl sig_restorer\nsig_restorer:\n\tmov $15, %eax\n\tsyscall\n\thlt\n");

/* Handler entries that record the stack pointer at the handler's first
 * instruction, then go on to the C handler in h_target. */
unsigned long entry_rsp;
void *h_target;
extern void h_entry(void);
__asm__(".text\n.globl h_entry\nh_entry:\n\tmov %rsp, entry_rsp(%rip)\n\tjmp *h_target(%rip)\n");

static long sigaction_(int sig, void *h, unsigned long flags, unsigned long mask) {
	struct ksigaction a = {h, flags | SA_RESTORER, sig_restorer, mask};
	return sys6(13, sig, (long)&a, 0, 8, 0, 0);
}
static long sigprocmask_(int how, unsigned long set, unsigned long *old) {
	return sys6(14, how, (long)&set, (long)old, 8, 0, 0);
}
static unsigned long curmask(void) {
	unsigned long m = 0;
	sys6(14, 0, 0, (long)&m, 8, 0, 0);
	return m;
}
static long getpid_(void) { return sys3(39, 0, 0, 0); }
static long gettid_(void) { return sys3(186, 0, 0, 0); }
static long kill_(long pid, int sig) { return sys3(62, pid, sig, 0); }
static long tgkill_(int sig) { return sys3(234, getpid_(), gettid_(), sig); }
static void line(const char *k, long v) {
	puts_(k);
	puts_(" ");
	putn(v);
	puts_("\n");
}
static void linex(const char *k, unsigned long v) {
	puts_(k);
	puts_(" ");
	puthex(v);
	puts_("\n");
}
static void nocore(void) {
	unsigned long lim[2] = {0, 0};
	sys3(160, 4, lim, 0); /* setrlimit(RLIMIT_CORE, 0) */
}

/* info: SA_SIGINFO with kill, tgkill and rt_sigqueueinfo; the frame. */
static volatile int got;
static void h_info(int sig, siginfo_t *si, struct ucontext *uc) {
	unsigned long rsp = entry_rsp;
	got++;
	line("sig", sig);
	line("code", si->code);
	line("pid_is_self", si->u.kill.pid == getpid_());
	line("uid", si->u.kill.uid == (unsigned)sys3(102, 0, 0, 0));
	if (si->code == -1)
		line("value", si->u.kill.value);
	line("rsp+8 mod 16", (rsp + 8) % 16);
	line("uc-rsp", (long)uc - (long)rsp);
	line("info-rsp", (long)si - (long)rsp);
	line("restorer_at_rsp", *(unsigned long *)rsp == (unsigned long)sig_restorer);
	line("uc_flags", uc->flags);
	line("uc_link", (long)uc->link);
	line("cs", uc->mc.cs);
	line("ss", uc->mc.ss);
	line("fs", uc->mc.fs);
	line("gs", uc->mc.gs);
	line("trapno", uc->mc.trapno);
	line("err", uc->mc.err);
	line("cr2", uc->mc.cr2);
	linex("oldmask", uc->mc.oldmask);
	linex("uc_sigmask", uc->sigmask);
	linex("mask_in_handler", curmask());
	line("fpstate-rsp", (long)uc->mc.fpstate - (long)rsp);
	line("fpstate%64", (unsigned long)uc->mc.fpstate % 64);
	long below = (long)(uc->mc.rsp - 128) - (long)uc->mc.fpstate;
	unsigned *sw = (unsigned *)(uc->mc.fpstate + 464);
	line("fpstate_below_redzone", below >= (long)sw[1] && below < (long)sw[1] + 64);
	linex("magic1", sw[0]);
	line("extended_size", sw[1]);
	linex("xfeatures", *(unsigned long *)(sw + 2));
	line("xstate_size", sw[4]);
	if (sw[0] == 0x46505853)
		linex("magic2", *(unsigned *)(uc->mc.fpstate + sw[4]));
	line("xstate_bv&3", *(unsigned long *)(uc->mc.fpstate + 512) & 3);
	line("rip_is_after_syscall", ((unsigned char *)uc->mc.rip)[-2] == 0x0f && ((unsigned char *)uc->mc.rip)[-1] == 0x05);
	line("rax_at_entry_was_result", uc->mc.rax == 0);
	line("df", (uc->mc.eflags >> 10) & 1);
}
static int t_info(void) {
	h_target = (void *)h_info;
	sigaction_(SIGUSR1, h_entry, SA_SIGINFO, 0);
	line("kill", kill_(getpid_(), SIGUSR1));
	line("tgkill", tgkill_(SIGUSR1));
	siginfo_t si = {0};
	si.code = -1;
	si.u.kill.pid = 7;
	si.u.kill.value = 4242;
	line("sigqueueinfo", sys3(129, getpid_(), SIGUSR1, &si));
	line("tkill_pid", sys3(200, getpid_(), SIGUSR1, 0));
	line("got", got);
	return 0;
}

/* plain: a handler without SA_SIGINFO still gets its arguments. */
static void h_plain(int sig) {
	got++;
	line("plain handler", sig);
}
static int t_plain(void) {
	sigaction_(SIGHUP, h_plain, 0, 0);
	kill_(getpid_(), SIGHUP);
	kill_(0, SIGHUP);
	kill_(-sys3(111, 0, 0, 0), SIGHUP);
	line("got", got);
	return 3;
}

/* default: no handler: killed (argument: the signal), stopped and
 * continued (SIGTSTP), or nothing (an ignored one). */
static int t_default(long sig) {
	nocore();
	puts_("before\n");
	kill_(getpid_(), (int)sig);
	puts_("after\n");
	return 0;
}

/* ignore: SIG_IGN, default-ignored signals, and SIG_IGN discarding a
 * pending signal. */
static int t_ignore(void) {
	sigaction_(SIGUSR1, (void *)1, 0, 0);
	line("kill ignored", kill_(getpid_(), SIGUSR1));
	line("SIGCHLD", kill_(getpid_(), SIGCHLD));
	line("SIGURG", kill_(getpid_(), SIGURG));
	line("SIGWINCH", kill_(getpid_(), SIGWINCH));
	line("SIGCONT", kill_(getpid_(), SIGCONT));
	sigaction_(SIGUSR2, h_plain, 0, 0);
	sigprocmask_(0, BIT(SIGUSR2), 0);
	kill_(getpid_(), SIGUSR2);
	unsigned long p = 0;
	sys3(127, &p, 8, 0);
	linex("pending", p);
	sigaction_(SIGUSR2, (void *)1, 0, 0);
	p = 0;
	sys3(127, &p, 8, 0);
	linex("pending after SIG_IGN", p);
	sigprocmask_(1, BIT(SIGUSR2), 0);
	line("got", got);
	return 0;
}

/* block: a blocked signal waits, and is delivered as soon as
 * rt_sigprocmask unblocks it, before the call returns. */
static int t_block(void) {
	sigaction_(SIGUSR1, h_plain, 0, 0);
	sigprocmask_(0, BIT(SIGUSR1), 0);
	kill_(getpid_(), SIGUSR1);
	kill_(getpid_(), SIGUSR1);
	unsigned long p = 0;
	sys3(127, &p, 8, 0);
	linex("pending", p);
	line("got before", got);
	puts_("unblocking\n");
	sigprocmask_(1, BIT(SIGUSR1), 0);
	puts_("unblocked\n");
	line("got", got);
	return 0;
}

/* resethand: the second signal finds SIG_DFL and kills. */
static void h_reset(int sig) {
	struct ksigaction old;
	sys6(13, sig, 0, (long)&old, 8, 0, 0);
	line("handler now", (long)old.handler);
	linex("flags now", old.flags);
	linex("mask in handler", curmask());
}
static int t_resethand(void) {
	nocore();
	sigaction_(SIGUSR1, h_reset, SA_RESETHAND, 0);
	kill_(getpid_(), SIGUSR1);
	puts_("second\n");
	kill_(getpid_(), SIGUSR1);
	puts_("not reached\n");
	return 0;
}

/* nodefer: the handler raises its own signal: nested at once with
 * SA_NODEFER, after it returns without. */
static int depth;
static void h_nest(int sig) {
	int d = ++depth;
	line("enter", d);
	if (d < 3)
		kill_(getpid_(), sig);
	line("leave", d);
}
static int t_nodefer(void) {
	sigaction_(SIGUSR1, h_nest, SA_NODEFER, 0);
	kill_(getpid_(), SIGUSR1);
	puts_("--\n");
	depth = 0;
	sigaction_(SIGUSR1, h_nest, 0, 0);
	kill_(getpid_(), SIGUSR1);
	return 0;
}

/* edit: the handler changes the interrupted rax (what kill returns),
 * then rip (where the program goes on). */
static int edits;
extern void resumed(void);
void resumed_c(void) {
	puts_("resumed\n");
	sys3(231, 5, 0, 0);
}
__asm__(".text\n.globl resumed\nresumed:\n\tand $-16, %rsp\n\tcall resumed_c\n\thlt\n");
static void h_edit(int sig, siginfo_t *si, struct ucontext *uc) {
	(void)sig, (void)si;
	if (edits++ == 0)
		uc->mc.rax = 42;
	else
		uc->mc.rip = (unsigned long)resumed;
}
static int t_edit(void) {
	sigaction_(SIGUSR1, h_edit, SA_SIGINFO, 0);
	line("kill returned", kill_(getpid_(), SIGUSR1));
	kill_(getpid_(), SIGUSR1);
	puts_("not reached\n");
	return 0;
}

/* longjmp: out of the handler, its mask stays. */
typedef unsigned long jmp_buf[8];
int setjmp_(jmp_buf);
void longjmp_(jmp_buf, int);
__asm__(".text\n.globl setjmp_\nsetjmp_:\n"
	"\tmov %rbx, 0(%rdi)\n\tmov %rbp, 8(%rdi)\n\tmov %r12, 16(%rdi)\n\tmov %r13, 24(%rdi)\n"
	"\tmov %r14, 32(%rdi)\n\tmov %r15, 40(%rdi)\n\tlea 8(%rsp), %rdx\n\tmov %rdx, 48(%rdi)\n"
	"\tmov (%rsp), %rdx\n\tmov %rdx, 56(%rdi)\n\txor %eax, %eax\n\tret\n"
	".globl longjmp_\nlongjmp_:\n"
	"\tmov 0(%rdi), %rbx\n\tmov 8(%rdi), %rbp\n\tmov 16(%rdi), %r12\n\tmov 24(%rdi), %r13\n"
	"\tmov 32(%rdi), %r14\n\tmov 40(%rdi), %r15\n\tmov 48(%rdi), %rsp\n\tmov %esi, %eax\n\tjmp *56(%rdi)\n");
static jmp_buf jb;
static void h_jump(int sig) {
	line("jumping out of", sig);
	longjmp_(jb, 7);
}
static int t_longjmp(void) {
	sigaction_(SIGUSR2, h_jump, 0, 0);
	int r = setjmp_(jb);
	if (r == 0) {
		kill_(getpid_(), SIGUSR2);
		puts_("not reached\n");
		return 1;
	}
	line("setjmp returned", r);
	linex("mask", curmask());
	sigprocmask_(1, BIT(SIGUSR2), 0);
	linex("mask", curmask());
	return 0;
}

/* altstack: delivery on the alternate stack, nested delivery there, the
 * kernel's checks, and SS_AUTODISARM. */
static char alt[65536] __attribute__((aligned(16)));
static char alt2[8192] __attribute__((aligned(16)));
static char tiny[2048] __attribute__((aligned(16)));
static int on_alt(void *p) { return (char *)p >= alt && (char *)p < alt + sizeof alt; }
static void show_alt(const char *k) {
	stack_t o;
	sys3(131, 0, &o, 0);
	puts_(k);
	puts_(": sp_is_alt ");
	putn(o.sp == alt);
	puts_(" sp_is_alt2 ");
	putn(o.sp == alt2);
	puts_(" size ");
	putn(o.size);
	puts_(" flags ");
	puthex((unsigned)o.flags);
	puts_("\n");
}
static unsigned long outer_local;
static void h_alt2(int sig) {
	char local;
	line("nested sig", sig);
	line("nested on alt", on_alt(&local));
	line("nested below outer", (unsigned long)&local < outer_local);
}
static void h_alt(int sig, siginfo_t *si, struct ucontext *uc) {
	char local;
	(void)si;
	outer_local = (unsigned long)&local;
	line("sig", sig);
	line("on alt", on_alt(&local));
	line("frame top gap", (long)(alt + sizeof alt) - (long)uc->mc.fpstate);
	line("uc_stack is alt", uc->stack.sp == alt);
	line("uc_stack size", uc->stack.size);
	linex("uc_stack flags", (unsigned)uc->stack.flags);
	show_alt("in handler");
	stack_t s = {.sp = alt, .size = sizeof alt};
	line("sigaltstack on it", sys3(131, &s, 0, 0));
	kill_(getpid_(), SIGUSR2);
}
static int t_altstack(void) {
	stack_t s = {.sp = 0, .size = 1000}, o;
	show_alt("initially");
	line("too small", sys3(131, &s, 0, 0));
	s.size = sizeof alt;
	s.flags = 5;
	line("bad flags", sys3(131, &s, 0, 0));
	s.sp = alt;
	s.flags = 0;
	line("set", sys3(131, &s, &o, 0));
	line("old flags", o.flags);
	show_alt("set");
	sigaction_(SIGUSR1, h_alt, SA_SIGINFO | SA_ONSTACK, 0);
	sigaction_(SIGUSR2, h_alt2, SA_ONSTACK, 0);
	kill_(getpid_(), SIGUSR1);
	show_alt("after");
	puts_("-- autodisarm\n");
	s.flags = SS_AUTODISARM;
	line("set", sys3(131, &s, 0, 0));
	show_alt("set");
	kill_(getpid_(), SIGUSR1);
	show_alt("after");
	puts_("-- disable\n");
	s.flags = SS_DISABLE;
	line("disable", sys3(131, &s, 0, 0));
	show_alt("disabled");
	kill_(getpid_(), SIGUSR2);
	return 0;
}

/* altedit: a handler rewrites uc_stack; rt_sigreturn takes it unless
 * the handler ran on the alternate stack (the stack pointer rt_sigreturn
 * checks is the frame's). */
static void h_altedit(int sig, siginfo_t *si, struct ucontext *uc) {
	char local;
	(void)sig, (void)si;
	line("handler on alt", on_alt(&local));
	uc->stack.sp = alt2;
	uc->stack.size = sizeof alt2;
}
static int t_altedit(void) {
	stack_t s = {.sp = alt, .size = sizeof alt};
	sys3(131, &s, 0, 0);
	sigaction_(SIGUSR1, h_altedit, SA_SIGINFO | SA_ONSTACK, 0);
	kill_(getpid_(), SIGUSR1);
	show_alt("after a handler on it");
	sigaction_(SIGUSR1, h_altedit, SA_SIGINFO, 0);
	kill_(getpid_(), SIGUSR1);
	show_alt("after a handler off it");
	return 0;
}

/* altoverflow: an alternate stack too small for the frame: SIGSEGV. */
static int t_altoverflow(void) {
	nocore();
	stack_t s = {.sp = tiny, .size = sizeof tiny};
	line("set", sys3(131, &s, 0, 0));
	sigaction_(SIGUSR1, h_plain, SA_ONSTACK, 0);
	kill_(getpid_(), SIGUSR1);
	puts_("not reached\n");
	return 0;
}

/* badstack: the frame cannot be written on the stack: SIGSEGV
 * (SI_KERNEL), whose handler runs on the alternate stack. */
static void h_segv(int sig, siginfo_t *si, struct ucontext *uc) {
	char local;
	line("sig", sig);
	line("code", si->code);
	line("addr", (long)si->u.addr);
	line("on alt", on_alt(&local));
	linex("rsp", uc->mc.rsp);
	linex("oldmask", uc->mc.oldmask);
	sys3(231, 9, 0, 0);
}
static int t_badstack(void) {
	stack_t s = {.sp = alt, .size = sizeof alt};
	sys3(131, &s, 0, 0);
	sigaction_(SIGUSR1, h_plain, 0, 0);
	sigaction_(SIGSEGV, h_segv, SA_SIGINFO | SA_ONSTACK, 0);
	long pid = getpid_();
	__asm__ volatile("mov %%rsp, %%r12\n\tmov $0x1000, %%rsp\n\tsyscall\n\tmov %%r12, %%rsp\n"
			 :
			 : "a"(62L), "D"(pid), "S"(SIGUSR1)
			 : "rcx", "r11", "r12", "memory");
	puts_("not reached\n");
	return 0;
}

/* norestorer: x86-64 needs SA_RESTORER: without, SIGSEGV. */
static int t_norestorer(void) {
	nocore();
	struct ksigaction a = {h_plain, 0, 0, 0};
	line("sigaction", sys6(13, SIGUSR1, (long)&a, 0, 8, 0, 0));
	kill_(getpid_(), SIGUSR1);
	puts_("not reached\n");
	return 0;
}

/* suspend: rt_sigsuspend takes a pending blocked signal at once, fails
 * with EINTR, and the old mask comes back after the handler. */
static void h_suspend(int sig) {
	line("handler", sig);
	linex("mask in handler", curmask());
}
static int t_suspend(void) {
	sigaction_(SIGUSR1, h_suspend, 0, BIT(SIGHUP));
	sigprocmask_(0, BIT(SIGUSR1) | BIT(SIGUSR2), 0);
	kill_(getpid_(), SIGUSR1);
	unsigned long m = BIT(SIGUSR2);
	line("sigsuspend", sys3(130, &m, 8, 0));
	linex("mask", curmask());
	return 0;
}

/* timedwait: rt_sigtimedwait takes pending signals of its set, blocked
 * ones included, and times out with EAGAIN. */
static long now_ns(void) {
	long ts[2];
	sys3(228, 1, ts, 0);
	return ts[0] * 1000000000L + ts[1];
}
static int t_timedwait(void) {
	sigaction_(SIGUSR1, h_plain, 0, 0);
	sigprocmask_(0, BIT(SIGUSR1) | BIT(SIGUSR2), 0);
	tgkill_(SIGUSR2);
	kill_(getpid_(), SIGUSR1);
	unsigned long set = BIT(SIGUSR1) | BIT(SIGUSR2);
	siginfo_t si;
	line("first", sys6(128, (long)&set, (long)&si, 0, 8, 0, 0));
	line("code", si.code);
	line("second", sys6(128, (long)&set, (long)&si, 0, 8, 0, 0));
	line("code", si.code);
	long zero[2] = {0, 0}, ms20[2] = {0, 20000000};
	line("none", sys6(128, (long)&set, (long)&si, (long)zero, 8, 0, 0));
	long t0 = now_ns();
	line("timeout", sys6(128, (long)&set, (long)&si, (long)ms20, 8, 0, 0));
	line("waited", now_ns() - t0 >= 15000000);
	long bad[2] = {0, 1000000000};
	line("bad timespec", sys6(128, (long)&set, (long)&si, (long)bad, 8, 0, 0));
	line("got", got);
	return 0;
}

/* order: several pending signals at once: synchronous ones first, then
 * by number, each frame on top of the last (the last one delivered runs
 * first); two queued instances of a real-time signal. */
static void h_order(int sig, siginfo_t *si, struct ucontext *uc) {
	(void)uc;
	puts_("handler ");
	putn(sig);
	puts_(" code ");
	putn(si->code);
	puts_(" value ");
	putn(si->code == -1 ? si->u.kill.value : 0);
	puts_(" mask ");
	puthex(curmask());
	puts_("\n");
}
static int t_order(void) {
	int sigs[] = {SIGHUP, SIGUSR1, SIGSEGV, SIGUSR2, SIGRT};
	for (int i = 0; i < 5; i++)
		sigaction_(sigs[i], h_order, SA_SIGINFO, 0);
	sigprocmask_(0, ~0UL, 0);
	kill_(getpid_(), SIGUSR2);
	tgkill_(SIGUSR1);
	kill_(getpid_(), SIGSEGV);
	for (int v = 1; v <= 2; v++) {
		siginfo_t si = {0};
		si.code = -1;
		si.u.kill.value = v;
		sys3(129, getpid_(), SIGRT, &si);
	}
	kill_(getpid_(), SIGHUP);
	kill_(getpid_(), SIGHUP);
	unsigned long p = 0;
	sys3(127, &p, 8, 0);
	linex("pending", p);
	sigprocmask_(2, 0, 0);
	puts_("unblocked\n");
	return 0;
}

/* restart: a blocking read of a pipe that a timer's SIGALRM
 * interrupts, its handler writing into the pipe: with SA_RESTART the
 * frame resumes at the syscall instruction with the call's number in
 * rax, and the read returns the byte; without, the read fails with
 * EINTR. */
static int pfd[2];
static void alarm_in(long ms) {
	long it[4] = {0, 0, 0, ms * 1000};
	sys3(38, 0, it, 0); /* setitimer(ITIMER_REAL) */
}
static void h_restart(int sig, siginfo_t *si, struct ucontext *uc) {
	unsigned char *ip = (unsigned char *)uc->mc.rip;
	line("handler", sig);
	line("si_code", si->code);
	line("frame rax", (long)uc->mc.rax);
	line("frame rip at the syscall", ip[0] == 0x0f && ip[1] == 0x05);
	sys3(1, pfd[1], "x", 1);
}
static int t_restart(int restart) {
	sys3(22, pfd, 0, 0);
	sigaction_(SIGALRM, h_restart, SA_SIGINFO | (restart ? SA_RESTART : 0), 0);
	alarm_in(20);
	char b[4];
	line("read", sys3(0, pfd[0], b, 4));
	if (!restart)
		line("read again", sys3(0, pfd[0], b, 4));
	return 0;
}

/* waits: rt_sigsuspend, pause, nanosleep and rt_sigtimedwait that a
 * timer's SIGALRM ends. */
static int t_waits(void) {
	sigaction_(SIGALRM, h_plain, 0, 0);
	unsigned long none = 0;
	alarm_in(20);
	line("sigsuspend", sys3(130, &none, 8, 0));
	alarm_in(20);
	line("pause", sys3(34, 0, 0, 0));
	alarm_in(20);
	long req[2] = {3, 0}, rem[2] = {0, 0};
	line("nanosleep", sys3(35, req, rem, 0));
	line("time left >= 2s", rem[0] >= 2);
	sigprocmask_(0, BIT(SIGALRM), 0);
	alarm_in(20);
	unsigned long set = BIT(SIGALRM);
	siginfo_t si;
	line("sigtimedwait", sys6(128, (long)&set, (long)&si, 0, 8, 0, 0));
	line("code", si.code);
	line("got", got);
	return 0;
}

/* errors: the kernel's checks. */
static int t_errors(void) {
	struct ksigaction a = {h_plain, SA_RESTORER | 0x400 | 0x2000000, sig_restorer, ~0UL}, o;
	line("sigaction SIGKILL", sys6(13, SIGKILL, (long)&a, 0, 8, 0, 0));
	line("query SIGKILL", sys6(13, SIGKILL, 0, (long)&o, 8, 0, 0));
	line("sig 0", sys6(13, 0, (long)&a, 0, 8, 0, 0));
	line("sig 65", sys6(13, 65, (long)&a, 0, 8, 0, 0));
	line("sigsetsize 4", sys6(13, SIGUSR1, (long)&a, 0, 4, 0, 0));
	line("bad act", sys6(13, SIGUSR1, 8, 0, 8, 0, 0));
	line("set", sys6(13, SIGUSR1, (long)&a, 0, 8, 0, 0));
	line("bad oact", sys6(13, SIGUSR1, (long)&a, 8, 8, 0, 0));
	sys6(13, SIGUSR1, 0, (long)&o, 8, 0, 0);
	linex("flags read back", o.flags);
	linex("mask read back", o.mask);
	line("procmask bad how", sys6(14, 3, (long)&a.mask, 0, 8, 0, 0));
	line("procmask size", sys6(14, 0, (long)&a.mask, 0, 16, 0, 0));
	line("procmask bad set", sys6(14, 0, 8, 0, 8, 0, 0));
	unsigned long all = ~0UL;
	sigprocmask_(2, all, 0);
	linex("mask all", curmask());
	sigprocmask_(2, 0, 0);
	line("kill 0", kill_(getpid_(), 0));
	line("kill 65", kill_(getpid_(), 65));
	line("kill -3", kill_(getpid_(), -3));
	line("tgkill tid 0", sys3(234, getpid_(), 0, SIGUSR1));
	line("tgkill tgid 0", sys3(234, 0, gettid_(), SIGUSR1));
	line("tgkill 0", sys3(234, getpid_(), gettid_(), 0));
	line("tkill -1", sys3(200, -1, SIGUSR1, 0));
	line("sigpending 9", sys3(127, &all, 9, 0));
	line("sigpending 4", sys3(127, &all, 4, 0));
	line("sigpending bad", sys3(127, 8, 8, 0));
	line("sigsuspend size", sys3(130, &all, 4, 0));
	line("sigaltstack bad", sys3(131, 8, 0, 0));
	line("sigqueueinfo bad", sys3(129, getpid_(), SIGUSR1, 8));
	/* The timers go to the kernel. */
	line("alarm", sys3(37, 100, 0, 0));
	line("alarm cancelled, left >= 99", sys3(37, 0, 0, 0) >= 99);
	return 0;
}

int main(int argc, char **argv, char **envp) {
	(void)envp;
	if (argc < 2)
		return 100;
	const char *t = argv[1];
	if (streq(t, "info"))
		return t_info();
	if (streq(t, "plain"))
		return t_plain();
	if (streq(t, "default"))
		return t_default(argc > 2 ? atol_(argv[2]) : SIGUSR1);
	if (streq(t, "ignore"))
		return t_ignore();
	if (streq(t, "block"))
		return t_block();
	if (streq(t, "resethand"))
		return t_resethand();
	if (streq(t, "nodefer"))
		return t_nodefer();
	if (streq(t, "edit"))
		return t_edit();
	if (streq(t, "longjmp"))
		return t_longjmp();
	if (streq(t, "altstack"))
		return t_altstack();
	if (streq(t, "altedit"))
		return t_altedit();
	if (streq(t, "altoverflow"))
		return t_altoverflow();
	if (streq(t, "badstack"))
		return t_badstack();
	if (streq(t, "norestorer"))
		return t_norestorer();
	if (streq(t, "suspend"))
		return t_suspend();
	if (streq(t, "timedwait"))
		return t_timedwait();
	if (streq(t, "order"))
		return t_order();
	if (streq(t, "restart"))
		return t_restart(1);
	if (streq(t, "norestart"))
		return t_restart(0);
	if (streq(t, "waits"))
		return t_waits();
	if (streq(t, "errors"))
		return t_errors();
	return 101;
}

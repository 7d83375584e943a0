/* sig_basic: the application's own signal handling, one case per
 * argument: handlers with and without SA_SIGINFO, the frame the kernel
 * builds (its layout relative to the handler's stack pointer, the
 * sigcontext and XSAVE fields that do not depend on addresses), default
 * actions, blocking, SA_RESETHAND, SA_NODEFER, a handler that edits
 * uc_mcontext or longjmps out, the alternate stack, sigsuspend,
 * sigtimedwait, the order of nested delivery and the kernel's errors.
 * Every line printed is the same natively and under reachvm. */
#include "rt.h"

#define SIGQUIT 3
#define SIGCHLD 17
#define SIGCONT 18
#define SIGURG 23
#define SIGWINCH 28
#define SIGRT 36
#define SS_AUTODISARM (1U << 31)

/* Handler entries that record the stack pointer at the handler's first
 * instruction, then go on to the C handler in h_target. */
unsigned long entry_rsp;
void *h_target;
extern void h_entry(void);
__asm__(".text\n.globl h_entry\nh_entry:\n\tmov %rsp, entry_rsp(%rip)\n\tjmp *h_target(%rip)\n");

static long sigprocmask_(int how, u64 set, u64 *old) { return rt_sigprocmask(how, &set, old); }
static long tgkill_(int sig) { return rt_tgkill(rt_getpid(), rt_gettid(), sig); }

/* seg returns a segment register of the frame: 0 cs, 1 gs, 2 fs, 3 ss. */
static unsigned seg(const rt_ucontext *uc, int i) { return (uc->gregs[REG_CSGSFS] >> 16 * i) & 0xffff; }

/* info: SA_SIGINFO with kill, tgkill and rt_sigqueueinfo; the frame. */
static volatile int got;
static void h_info(int sig, rt_siginfo *si, rt_ucontext *uc) {
	unsigned long rsp = entry_rsp;
	got++;
	line("sig", sig);
	line("code", si->si_code);
	line("pid_is_self", si->u.kill.pid == rt_getpid());
	line("uid", si->u.kill.uid == (unsigned)rt_getuid());
	if (si->si_code == -1)
		line("value", si->u.kill.value);
	line("rsp+8 mod 16", (rsp + 8) % 16);
	line("uc-rsp", (long)uc - (long)rsp);
	line("info-rsp", (long)si - (long)rsp);
	line("restorer_at_rsp", *(unsigned long *)rsp == (unsigned long)rt_restorer);
	line("uc_flags", uc->uc_flags);
	line("uc_link", (long)uc->uc_link);
	line("cs", seg(uc, 0));
	line("ss", seg(uc, 3));
	line("fs", seg(uc, 2));
	line("gs", seg(uc, 1));
	line("trapno", uc->gregs[REG_TRAPNO]);
	line("err", uc->gregs[REG_ERR]);
	line("cr2", uc->gregs[REG_CR2]);
	linex("oldmask", uc->gregs[REG_OLDMASK]);
	linex("uc_sigmask", uc->uc_sigmask);
	linex("mask_in_handler", rt_blocked());
	line("fpstate-rsp", (long)uc->fpregs - (long)rsp);
	line("fpstate%64", (unsigned long)uc->fpregs % 64);
	long below = (long)(uc->gregs[REG_RSP] - 128) - (long)uc->fpregs;
	unsigned char *fp = uc->fpregs;
	unsigned *sw = (unsigned *)(fp + 464);
	line("fpstate_below_redzone", below >= (long)sw[1] && below < (long)sw[1] + 64);
	linex("magic1", sw[0]);
	line("extended_size", sw[1]);
	linex("xfeatures", *(unsigned long *)(sw + 2));
	line("xstate_size", sw[4]);
	if (sw[0] == 0x46505853)
		linex("magic2", *(unsigned *)(fp + sw[4]));
	line("xstate_bv&3", *(unsigned long *)(fp + 512) & 3);
	line("rip_is_after_syscall", ((unsigned char *)uc->gregs[REG_RIP])[-2] == 0x0f && ((unsigned char *)uc->gregs[REG_RIP])[-1] == 0x05);
	line("rax_at_entry_was_result", uc->gregs[REG_RAX] == 0);
	line("df", (uc->gregs[REG_EFL] >> 10) & 1);
}
static int t_info(void) {
	h_target = (void *)h_info;
	rt_install(SIGUSR1, h_entry, SA_SIGINFO, 0);
	line("kill", rt_kill(rt_getpid(), SIGUSR1));
	line("tgkill", tgkill_(SIGUSR1));
	rt_siginfo si = {0};
	si.si_code = -1;
	si.u.kill.pid = 7;
	si.u.kill.value = 4242;
	line("sigqueueinfo", sys3(129, rt_getpid(), SIGUSR1, &si));
	line("tkill_pid", sys3(200, rt_getpid(), SIGUSR1, 0));
	line("got", got);
	return 0;
}

/* plain: a handler without SA_SIGINFO still gets its arguments. */
static void h_plain(int sig) {
	got++;
	line("plain handler", sig);
}
static int t_plain(void) {
	rt_install(SIGHUP, h_plain, 0, 0);
	rt_kill(rt_getpid(), SIGHUP);
	rt_kill(0, SIGHUP);
	rt_kill(-sys3(111, 0, 0, 0), SIGHUP);
	line("got", got);
	return 3;
}

/* default: no handler: killed (argument: the signal), stopped and
 * continued (SIGTSTP), or nothing (an ignored one). */
static int t_default(long sig) {
	rt_nocore();
	puts_("before\n");
	rt_kill(rt_getpid(), (int)sig);
	puts_("after\n");
	return 0;
}

/* ignore: SIG_IGN, default-ignored signals, and SIG_IGN discarding a
 * pending signal. */
static int t_ignore(void) {
	rt_install(SIGUSR1, SIG_IGN, 0, 0);
	line("kill ignored", rt_kill(rt_getpid(), SIGUSR1));
	line("SIGCHLD", rt_kill(rt_getpid(), SIGCHLD));
	line("SIGURG", rt_kill(rt_getpid(), SIGURG));
	line("SIGWINCH", rt_kill(rt_getpid(), SIGWINCH));
	line("SIGCONT", rt_kill(rt_getpid(), SIGCONT));
	rt_install(SIGUSR2, h_plain, 0, 0);
	sigprocmask_(0, SIGBIT(SIGUSR2), 0);
	rt_kill(rt_getpid(), SIGUSR2);
	unsigned long p = 0;
	sys3(127, &p, 8, 0);
	linex("pending", p);
	rt_install(SIGUSR2, SIG_IGN, 0, 0);
	p = 0;
	sys3(127, &p, 8, 0);
	linex("pending after SIG_IGN", p);
	sigprocmask_(1, SIGBIT(SIGUSR2), 0);
	line("got", got);
	return 0;
}

/* block: a blocked signal waits, and is delivered as soon as
 * rt_sigprocmask unblocks it, before the call returns. */
static int t_block(void) {
	rt_install(SIGUSR1, h_plain, 0, 0);
	sigprocmask_(0, SIGBIT(SIGUSR1), 0);
	rt_kill(rt_getpid(), SIGUSR1);
	rt_kill(rt_getpid(), SIGUSR1);
	unsigned long p = 0;
	sys3(127, &p, 8, 0);
	linex("pending", p);
	line("got before", got);
	puts_("unblocking\n");
	sigprocmask_(1, SIGBIT(SIGUSR1), 0);
	puts_("unblocked\n");
	line("got", got);
	return 0;
}

/* resethand: the second signal finds SIG_DFL and kills. */
static void h_reset(int sig) {
	struct rt_kaction old;
	sys6(13, sig, 0, (long)&old, 8, 0, 0);
	line("handler now", (long)old.handler);
	linex("flags now", old.flags);
	linex("mask in handler", rt_blocked());
}
static int t_resethand(void) {
	rt_nocore();
	rt_install(SIGUSR1, h_reset, SA_RESETHAND, 0);
	rt_kill(rt_getpid(), SIGUSR1);
	puts_("second\n");
	rt_kill(rt_getpid(), SIGUSR1);
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
		rt_kill(rt_getpid(), sig);
	line("leave", d);
}
static int t_nodefer(void) {
	rt_install(SIGUSR1, h_nest, SA_NODEFER, 0);
	rt_kill(rt_getpid(), SIGUSR1);
	puts_("--\n");
	depth = 0;
	rt_install(SIGUSR1, h_nest, 0, 0);
	rt_kill(rt_getpid(), SIGUSR1);
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
static void h_edit(int sig, rt_siginfo *si, rt_ucontext *uc) {
	(void)sig, (void)si;
	if (edits++ == 0)
		uc->gregs[REG_RAX] = 42;
	else
		uc->gregs[REG_RIP] = (unsigned long)resumed;
}
static int t_edit(void) {
	rt_install(SIGUSR1, h_edit, SA_SIGINFO, 0);
	line("kill returned", rt_kill(rt_getpid(), SIGUSR1));
	rt_kill(rt_getpid(), SIGUSR1);
	puts_("not reached\n");
	return 0;
}

/* longjmp: out of the handler, its mask stays. */
static rt_jmpbuf jb;
static void h_jump(int sig) {
	line("jumping out of", sig);
	rt_longjmp(&jb, 7);
}
static int t_longjmp(void) {
	rt_install(SIGUSR2, h_jump, 0, 0);
	int r = rt_setjmp(&jb);
	if (r == 0) {
		rt_kill(rt_getpid(), SIGUSR2);
		puts_("not reached\n");
		return 1;
	}
	line("setjmp returned", r);
	linex("mask", rt_blocked());
	sigprocmask_(1, SIGBIT(SIGUSR2), 0);
	linex("mask", rt_blocked());
	return 0;
}

/* altstack: delivery on the alternate stack, nested delivery there, the
 * kernel's checks, and SS_AUTODISARM. */
static char alt[65536] __attribute__((aligned(16)));
static char alt2[8192] __attribute__((aligned(16)));
static char tiny[2048] __attribute__((aligned(16)));
static int on_alt(void *p) { return (char *)p >= alt && (char *)p < alt + sizeof alt; }
static void show_alt(const char *k) {
	rt_stack o;
	sys3(131, 0, &o, 0);
	puts_(k);
	puts_(": sp_is_alt ");
	putn(o.ss_sp == alt);
	puts_(" sp_is_alt2 ");
	putn(o.ss_sp == alt2);
	puts_(" size ");
	putn(o.ss_size);
	puts_(" flags ");
	puthex((unsigned)o.ss_flags);
	puts_("\n");
}
static unsigned long outer_local;
static void h_alt2(int sig) {
	char local;
	line("nested sig", sig);
	line("nested on alt", on_alt(&local));
	/* Only a nested delivery has an outer frame to compare with: the
	 * main stack and the alternate one (in .bss) lie wherever the
	 * loader put them. */
	if (outer_local)
		line("nested below outer", (unsigned long)&local < outer_local);
}
static void h_alt(int sig, rt_siginfo *si, rt_ucontext *uc) {
	char local;
	(void)si;
	outer_local = (unsigned long)&local;
	line("sig", sig);
	line("on alt", on_alt(&local));
	line("frame top gap", (long)(alt + sizeof alt) - (long)uc->fpregs);
	line("uc_stack is alt", uc->uc_stack.ss_sp == alt);
	line("uc_stack size", uc->uc_stack.ss_size);
	linex("uc_stack flags", (unsigned)uc->uc_stack.ss_flags);
	show_alt("in handler");
	rt_stack s = {.ss_sp = alt, .ss_size = sizeof alt};
	line("sigaltstack on it", sys3(131, &s, 0, 0));
	rt_kill(rt_getpid(), SIGUSR2);
}
static int t_altstack(void) {
	rt_stack s = {.ss_sp = 0, .ss_size = 1000}, o;
	show_alt("initially");
	line("too small", sys3(131, &s, 0, 0));
	s.ss_size = sizeof alt;
	s.ss_flags = 5;
	line("bad flags", sys3(131, &s, 0, 0));
	s.ss_sp = alt;
	s.ss_flags = 0;
	line("set", sys3(131, &s, &o, 0));
	line("old flags", o.ss_flags);
	show_alt("set");
	rt_install(SIGUSR1, h_alt, SA_SIGINFO | SA_ONSTACK, 0);
	rt_install(SIGUSR2, h_alt2, SA_ONSTACK, 0);
	rt_kill(rt_getpid(), SIGUSR1);
	show_alt("after");
	puts_("-- autodisarm\n");
	s.ss_flags = SS_AUTODISARM;
	line("set", sys3(131, &s, 0, 0));
	show_alt("set");
	rt_kill(rt_getpid(), SIGUSR1);
	show_alt("after");
	puts_("-- disable\n");
	s.ss_flags = SS_DISABLE;
	line("disable", sys3(131, &s, 0, 0));
	show_alt("disabled");
	outer_local = 0;
	rt_kill(rt_getpid(), SIGUSR2);
	return 0;
}

/* altedit: a handler rewrites uc_stack; rt_sigreturn takes it unless
 * the handler ran on the alternate stack (the stack pointer rt_sigreturn
 * checks is the frame's). */
static void h_altedit(int sig, rt_siginfo *si, rt_ucontext *uc) {
	char local;
	(void)sig, (void)si;
	line("handler on alt", on_alt(&local));
	uc->uc_stack.ss_sp = alt2;
	uc->uc_stack.ss_size = sizeof alt2;
}
static int t_altedit(void) {
	rt_stack s = {.ss_sp = alt, .ss_size = sizeof alt};
	sys3(131, &s, 0, 0);
	rt_install(SIGUSR1, h_altedit, SA_SIGINFO | SA_ONSTACK, 0);
	rt_kill(rt_getpid(), SIGUSR1);
	show_alt("after a handler on it");
	rt_install(SIGUSR1, h_altedit, SA_SIGINFO, 0);
	rt_kill(rt_getpid(), SIGUSR1);
	show_alt("after a handler off it");
	return 0;
}

/* altoverflow: an alternate stack too small for the frame: SIGSEGV. */
static int t_altoverflow(void) {
	rt_nocore();
	rt_stack s = {.ss_sp = tiny, .ss_size = sizeof tiny};
	line("set", sys3(131, &s, 0, 0));
	rt_install(SIGUSR1, h_plain, SA_ONSTACK, 0);
	rt_kill(rt_getpid(), SIGUSR1);
	puts_("not reached\n");
	return 0;
}

/* badstack: the frame cannot be written on the stack: SIGSEGV
 * (SI_KERNEL), whose handler runs on the alternate stack. */
static void h_segv(int sig, rt_siginfo *si, rt_ucontext *uc) {
	char local;
	line("sig", sig);
	line("code", si->si_code);
	line("addr", (long)si->u.addr);
	line("on alt", on_alt(&local));
	linex("rsp", uc->gregs[REG_RSP]);
	linex("oldmask", uc->gregs[REG_OLDMASK]);
	sys3(231, 9, 0, 0);
}
static int t_badstack(void) {
	rt_stack s = {.ss_sp = alt, .ss_size = sizeof alt};
	sys3(131, &s, 0, 0);
	rt_install(SIGUSR1, h_plain, 0, 0);
	rt_install(SIGSEGV, h_segv, SA_SIGINFO | SA_ONSTACK, 0);
	long pid = rt_getpid();
	__asm__ volatile("mov %%rsp, %%r12\n\tmov $0x1000, %%rsp\n\tsyscall\n\tmov %%r12, %%rsp\n"
			 :
			 : "a"(62L), "D"(pid), "S"(SIGUSR1)
			 : "rcx", "r11", "r12", "memory");
	puts_("not reached\n");
	return 0;
}

/* norestorer: x86-64 needs SA_RESTORER: without, SIGSEGV. */
static int t_norestorer(void) {
	rt_nocore();
	struct rt_kaction a = {h_plain, 0, 0, 0};
	line("sigaction", sys6(13, SIGUSR1, (long)&a, 0, 8, 0, 0));
	rt_kill(rt_getpid(), SIGUSR1);
	puts_("not reached\n");
	return 0;
}

/* suspend: rt_sigsuspend takes a pending blocked signal at once, fails
 * with EINTR, and the old mask comes back after the handler. */
static void h_suspend(int sig) {
	line("handler", sig);
	linex("mask in handler", rt_blocked());
}
static int t_suspend(void) {
	rt_install(SIGUSR1, h_suspend, 0, SIGBIT(SIGHUP));
	sigprocmask_(0, SIGBIT(SIGUSR1) | SIGBIT(SIGUSR2), 0);
	rt_kill(rt_getpid(), SIGUSR1);
	unsigned long m = SIGBIT(SIGUSR2);
	line("sigsuspend", sys3(130, &m, 8, 0));
	linex("mask", rt_blocked());
	return 0;
}

/* timedwait: rt_sigtimedwait takes pending signals of its set, blocked
 * ones included, and times out with EAGAIN. */
static int t_timedwait(void) {
	rt_install(SIGUSR1, h_plain, 0, 0);
	sigprocmask_(0, SIGBIT(SIGUSR1) | SIGBIT(SIGUSR2), 0);
	tgkill_(SIGUSR2);
	rt_kill(rt_getpid(), SIGUSR1);
	unsigned long set = SIGBIT(SIGUSR1) | SIGBIT(SIGUSR2);
	rt_siginfo si;
	line("first", sys6(128, (long)&set, (long)&si, 0, 8, 0, 0));
	line("code", si.si_code);
	line("second", sys6(128, (long)&set, (long)&si, 0, 8, 0, 0));
	line("code", si.si_code);
	long zero[2] = {0, 0}, ms20[2] = {0, 20000000};
	line("none", sys6(128, (long)&set, (long)&si, (long)zero, 8, 0, 0));
	long t0 = rt_now_ns();
	line("timeout", sys6(128, (long)&set, (long)&si, (long)ms20, 8, 0, 0));
	line("waited", rt_now_ns() - t0 >= 15000000);
	long bad[2] = {0, 1000000000};
	line("bad timespec", sys6(128, (long)&set, (long)&si, (long)bad, 8, 0, 0));
	line("got", got);
	return 0;
}

/* order: several pending signals at once: synchronous ones first, then
 * by number, each frame on top of the last (the last one delivered runs
 * first); two queued instances of a real-time signal. */
static void h_order(int sig, rt_siginfo *si, rt_ucontext *uc) {
	(void)uc;
	puts_("handler ");
	putn(sig);
	puts_(" code ");
	putn(si->si_code);
	puts_(" value ");
	putn(si->si_code == -1 ? si->u.kill.value : 0);
	puts_(" mask ");
	puthex(rt_blocked());
	puts_("\n");
}
static int t_order(void) {
	int sigs[] = {SIGHUP, SIGUSR1, SIGSEGV, SIGUSR2, SIGRT};
	for (int i = 0; i < 5; i++)
		rt_install(sigs[i], h_order, SA_SIGINFO, 0);
	sigprocmask_(0, ~0UL, 0);
	rt_kill(rt_getpid(), SIGUSR2);
	tgkill_(SIGUSR1);
	rt_kill(rt_getpid(), SIGSEGV);
	for (int v = 1; v <= 2; v++) {
		rt_siginfo si = {0};
		si.si_code = -1;
		si.u.kill.value = v;
		sys3(129, rt_getpid(), SIGRT, &si);
	}
	rt_kill(rt_getpid(), SIGHUP);
	rt_kill(rt_getpid(), SIGHUP);
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
static void h_restart(int sig, rt_siginfo *si, rt_ucontext *uc) {
	unsigned char *ip = (unsigned char *)uc->gregs[REG_RIP];
	line("handler", sig);
	line("si_code", si->si_code);
	line("frame rax", (long)uc->gregs[REG_RAX]);
	line("frame rip at the syscall", ip[0] == 0x0f && ip[1] == 0x05);
	sys3(1, pfd[1], "x", 1);
}
static int t_restart(int restart) {
	sys3(22, pfd, 0, 0);
	rt_install(SIGALRM, h_restart, SA_SIGINFO | (restart ? SA_RESTART : 0), 0);
	rt_setitimer(100000, 0);
	char b[4];
	line("read", sys3(0, pfd[0], b, 4));
	if (!restart)
		line("read again", sys3(0, pfd[0], b, 4));
	return 0;
}

/* waits: rt_sigsuspend, pause, nanosleep and rt_sigtimedwait that a
 * timer's SIGALRM ends. */
static int t_waits(void) {
	rt_install(SIGALRM, h_plain, 0, 0);
	unsigned long none = 0;
	rt_setitimer(100000, 0);
	line("sigsuspend", sys3(130, &none, 8, 0));
	rt_setitimer(100000, 0);
	line("pause", sys3(34, 0, 0, 0));
	rt_setitimer(100000, 0);
	long req[2] = {3, 0}, rem[2] = {0, 0};
	line("nanosleep", sys3(35, req, rem, 0));
	line("time left >= 2s", rem[0] >= 2);
	sigprocmask_(0, SIGBIT(SIGALRM), 0);
	rt_setitimer(100000, 0);
	unsigned long set = SIGBIT(SIGALRM);
	rt_siginfo si;
	line("sigtimedwait", sys6(128, (long)&set, (long)&si, 0, 8, 0, 0));
	line("code", si.si_code);
	line("got", got);
	return 0;
}

/* errors: the kernel's checks. */
static int t_errors(void) {
	struct rt_kaction a = {h_plain, SA_RESTORER | 0x400 | 0x2000000, rt_restorer, ~0UL}, o;
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
	linex("mask all", rt_blocked());
	sigprocmask_(2, 0, 0);
	line("kill 0", rt_kill(rt_getpid(), 0));
	line("kill 65", rt_kill(rt_getpid(), 65));
	line("kill -3", rt_kill(rt_getpid(), -3));
	line("tgkill tid 0", sys3(234, rt_getpid(), 0, SIGUSR1));
	line("tgkill tgid 0", sys3(234, 0, rt_gettid(), SIGUSR1));
	line("tgkill 0", sys3(234, rt_getpid(), rt_gettid(), 0));
	line("tkill -1", sys3(200, -1, SIGUSR1, 0));
	line("sigpending 9", sys3(127, &all, 9, 0));
	line("sigpending 4", sys3(127, &all, 4, 0));
	line("sigpending bad", sys3(127, 8, 8, 0));
	line("sigsuspend size", sys3(130, &all, 4, 0));
	line("sigaltstack bad", sys3(131, 8, 0, 0));
	line("sigqueueinfo bad", sys3(129, rt_getpid(), SIGUSR1, 8));
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

/* sig_fault: synchronous signals from instructions: a write and a read
 * of an unmapped page and a call to one (SIGSEGV), ud2 (SIGILL) and int3
 * (SIGTRAP), with handlers that read the fault's siginfo and sigcontext
 * (trapno, the page fault's error code, cr2, which only page faults
 * change) and go on past the instruction; and SIGILL blocked, ignored or
 * left at its default: the process dies of it. */
#include "rt.h"

#define SIGILL 4
#define SIGTRAP 5
#define SIGSEGV 11
#define SA_SIGINFO 4
#define SA_RESTORER 0x04000000

struct ksigaction {
	void *handler;
	unsigned long flags;
	void (*restorer)(void);
	unsigned long mask;
};
extern void sig_restorer(void);
__asm__(".text\n.globl sig_restorer\nsig_restorer:\n\tmov $15, %eax\n\tsyscall\n\thlt\n");

struct sigcontext {
	unsigned long r8, r9, r10, r11, r12, r13, r14, r15;
	unsigned long rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp;
	unsigned long rip, eflags;
	unsigned short cs, gs, fs, ss;
	unsigned long err, trapno, oldmask, cr2;
};
struct ucontext {
	unsigned long flags, link, ss_sp, ss_flags, ss_size;
	struct sigcontext mc;
};
typedef struct {
	int signo, errno_, code, pad;
	void *addr;
} siginfo_t;

extern char ud2_at[], int3_after[], segv_w[], segv_w_end[], segv_r[], segv_r_end[];
__attribute__((noinline)) static void do_segv_w(void) {
	__asm__ volatile(".globl segv_w\nsegv_w:\n\tmovl $1, 0x1000\n.globl segv_w_end\nsegv_w_end:\n" ::: "memory");
}
__attribute__((noinline)) static int do_segv_r(void) {
	int v = 0;
	__asm__ volatile(".globl segv_r\nsegv_r:\n\tmovl 0x1000, %0\n.globl segv_r_end\nsegv_r_end:\n" : "+r"(v)::"memory");
	return v;
}
static void (*volatile nowhere)(void) = (void (*)(void))0x1000;
__attribute__((noinline)) static void do_ud2(void) { __asm__ volatile(".globl ud2_at\nud2_at:\n\tud2\n"); }
__attribute__((noinline)) static void do_int3(void) { __asm__ volatile("int3\n.globl int3_after\nint3_after:\n"); }

static void line(const char *k, long v) {
	puts_(k);
	puts_(" ");
	putn(v);
	puts_("\n");
}

static void h_fault(int sig, siginfo_t *si, struct ucontext *uc) {
	if (sig == SIGSEGV) {
		unsigned long rip = uc->mc.rip;
		line("segv code", si->code);
		line("addr", (long)si->addr);
		line("at", rip == (unsigned long)segv_w ? 1 : rip == (unsigned long)segv_r ? 2 : rip == 0x1000 ? 3 : 0);
		line("trapno", uc->mc.trapno);
		line("err", uc->mc.err);
		line("cr2", uc->mc.cr2);
		if (rip == (unsigned long)segv_w)
			uc->mc.rip = (unsigned long)segv_w_end;
		else if (rip == (unsigned long)segv_r)
			uc->mc.rip = (unsigned long)segv_r_end;
		else {
			/* The call pushed its return address: return there. */
			uc->mc.rip = *(unsigned long *)uc->mc.rsp;
			uc->mc.rsp += 8;
		}
		return;
	}
	line("sig", sig);
	line("code", si->code);
	line("addr_is_ud2", si->addr == ud2_at);
	line("addr", sig == SIGTRAP ? (long)si->addr : 0);
	line("rip_is_ud2", uc->mc.rip == (unsigned long)ud2_at);
	line("rip_is_after_int3", uc->mc.rip == (unsigned long)int3_after);
	line("trapno", uc->mc.trapno);
	line("err", uc->mc.err);
	line("cr2", uc->mc.cr2);
	if (sig == SIGILL)
		uc->mc.rip += 2;
}

static long sigaction_(int sig, void *h, unsigned long flags) {
	struct ksigaction a = {h, flags | SA_RESTORER, sig_restorer, 0};
	return sys6(13, sig, (long)&a, 0, 8, 0, 0);
}

int main(int argc, char **argv, char **envp) {
	(void)envp;
	if (argc < 2)
		return 100;
	unsigned long lim[2] = {0, 0};
	sys3(160, 4, lim, 0); /* no core */
	const char *t = argv[1];
	if (streq(t, "handled")) {
		sigaction_(SIGILL, h_fault, SA_SIGINFO);
		sigaction_(SIGTRAP, h_fault, SA_SIGINFO);
		sigaction_(SIGSEGV, h_fault, SA_SIGINFO);
		do_segv_w();
		puts_("after the write\n");
		line("read", do_segv_r());
		nowhere();
		puts_("after the call\n");
		do_ud2();
		puts_("after ud2\n");
		do_int3();
		puts_("after int3\n");
		do_ud2();
		puts_("after the second ud2\n");
		return 0;
	}
	if (streq(t, "blocked")) {
		sigaction_(SIGILL, h_fault, SA_SIGINFO);
		unsigned long set = 1UL << (SIGILL - 1);
		sys6(14, 0, (long)&set, 0, 8, 0, 0);
	} else if (streq(t, "ignored"))
		sigaction_(SIGILL, (void *)1, 0);
	else if (!streq(t, "default"))
		return 101;
	puts_("before\n");
	do_ud2();
	puts_("not reached\n");
	return 0;
}

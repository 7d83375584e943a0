/* sig_fault: synchronous signals from instructions: a write and a read
 * of an unmapped page and a call to one (SIGSEGV), ud2 (SIGILL) and int3
 * (SIGTRAP), with handlers that read the fault's siginfo and sigcontext
 * (trapno, the page fault's error code, cr2, which only page faults
 * change) and go on past the instruction; and SIGILL blocked, ignored or
 * left at its default: the process dies of it. */
#include "rt.h"

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

static void h_fault(int sig, rt_siginfo *si, rt_ucontext *uc) {
	if (sig == SIGSEGV) {
		unsigned long rip = uc->gregs[REG_RIP];
		line("segv code", si->si_code);
		line("addr", (long)si->u.addr);
		line("at", rip == (unsigned long)segv_w ? 1 : rip == (unsigned long)segv_r ? 2 : rip == 0x1000 ? 3 : 0);
		line("trapno", uc->gregs[REG_TRAPNO]);
		line("err", uc->gregs[REG_ERR]);
		line("cr2", uc->gregs[REG_CR2]);
		if (rip == (unsigned long)segv_w)
			uc->gregs[REG_RIP] = (unsigned long)segv_w_end;
		else if (rip == (unsigned long)segv_r)
			uc->gregs[REG_RIP] = (unsigned long)segv_r_end;
		else {
			/* The call pushed its return address: return there. */
			uc->gregs[REG_RIP] = *(unsigned long *)uc->gregs[REG_RSP];
			uc->gregs[REG_RSP] += 8;
		}
		return;
	}
	line("sig", sig);
	line("code", si->si_code);
	line("addr_is_ud2", si->u.addr == ud2_at);
	line("addr", sig == SIGTRAP ? (long)si->u.addr : 0);
	line("rip_is_ud2", uc->gregs[REG_RIP] == (unsigned long)ud2_at);
	line("rip_is_after_int3", uc->gregs[REG_RIP] == (unsigned long)int3_after);
	line("trapno", uc->gregs[REG_TRAPNO]);
	line("err", uc->gregs[REG_ERR]);
	line("cr2", uc->gregs[REG_CR2]);
	if (sig == SIGILL)
		uc->gregs[REG_RIP] += 2;
}

int main(int argc, char **argv, char **envp) {
	(void)envp;
	if (argc < 2)
		return 100;
	rt_nocore();
	const char *t = argv[1];
	if (streq(t, "handled")) {
		rt_handle(SIGILL, h_fault, 0, 0);
		rt_handle(SIGTRAP, h_fault, 0, 0);
		rt_handle(SIGSEGV, h_fault, 0, 0);
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
		rt_handle(SIGILL, h_fault, 0, 0);
		u64 set = SIGBIT(SIGILL);
		rt_sigprocmask(SIG_BLOCK, &set, 0);
	} else if (streq(t, "ignored"))
		rt_install(SIGILL, SIG_IGN, 0, 0);
	else if (!streq(t, "default"))
		return 101;
	puts_("before\n");
	do_ud2();
	puts_("not reached\n");
	return 0;
}

/* faultinfo: faults taken by a handler that prints what it is given:
 * si_signo, si_code, si_addr, the trap number and error code, and every
 * general register, rip, rsp and the flags from uc_mcontext, each as a
 * constant or relative to a known address (the faulting instruction
 * "ip", the fault site's argument "arg", its stack pointer "sp"), so that
 * the output is the same wherever the program is loaded. The handler
 * then resumes after the fault site. argv[1] picks a group:
 *
 *   segv  a load from an unmapped page, a store to a read-only page, a
 *         call to an unmapped page, a load from a non-canonical address,
 *         hlt, int $0x41, and a push with rsp at an unmapped page (the
 *         handler runs on an alternate stack)
 *   ill   ud2, an invalid opcode, lock on a register operand
 *   fpe   a division by zero, a division overflow
 *   trap  int3, int $3, int1
 *   bus   a load from a page of a private mapping past the end of its file
 *   busshared  the same through a shared mapping
 *
 * Each fault site saves the callee-saved registers and the stack
 * pointer, sets the flags with a compare and every register but rdi
 * (the argument) and rsp to a constant, sets up the fault and runs the
 * faulting instruction at its label 9; site_resume restores the stack
 * pointer and returns.
 */
#include "rt.h"

u64 site_sp, site_ip, site_arg;
static char altstack[64 << 10] __attribute__((aligned(16)));

#define SITE(name, setup, insn)                                                                               \
	__asm__(".text\n.align 16\n.type " #name ", @function\n" #name ":\n"                                 \
		"\tpush %rbx\n\tpush %rbp\n\tpush %r12\n\tpush %r13\n\tpush %r14\n\tpush %r15\n"             \
		"\tmov %rsp, site_sp(%rip)\n\tmov %rdi, site_arg(%rip)\n"                                   \
		"\tlea 9f(%rip), %rax\n\tmov %rax, site_ip(%rip)\n"                                         \
		"\tcmpl $5, site_three(%rip)\n"                                                             \
		"\tmovabs $0x1111111111111111, %rax\n\tmovabs $0x2222222222222222, %rbx\n"                  \
		"\tmovabs $0x3333333333333333, %rcx\n\tmovabs $0x4444444444444444, %rdx\n"                  \
		"\tmovabs $0x5555555555555555, %rsi\n\tmovabs $0x6666666666666666, %rbp\n"                  \
		"\tmovabs $0x8888888888888888, %r8\n\tmovabs $0x9999999999999999, %r9\n"                    \
		"\tmovabs $0xaaaaaaaaaaaaaaaa, %r10\n\tmovabs $0xbbbbbbbbbbbbbbbb, %r11\n"                  \
		"\tmovabs $0xcccccccccccccccc, %r12\n\tmovabs $0xdddddddddddddddd, %r13\n"                  \
		"\tmovabs $0xeeeeeeeeeeeeeeee, %r14\n\tmovabs $0x0f0f0f0f0f0f0f0f, %r15\n" setup "\n9:\t" insn \
		"\n\tud2\n");                                                                               \
	void name(u64 arg) __attribute__((visibility("hidden")))

__asm__(".section .rodata\nsite_three: .long 3\n.text\n.align 16\nsite_resume:\n"
	"\tmov site_sp(%rip), %rsp\n\tpop %r15\n\tpop %r14\n\tpop %r13\n\tpop %r12\n\tpop %rbp\n\tpop %rbx\n\tret\n");
extern char site_resume[] __attribute__((visibility("hidden")));

SITE(load_unmapped, "", "mov (%rdi), %rax");
SITE(store_readonly, "", "mov %rax, 8(%rdi)");
SITE(call_unmapped, "", "call *%rdi");
SITE(load_noncanonical, "", "mov (%rdi), %rax");
SITE(do_hlt, "", "hlt");
SITE(int_41, "", "int $0x41");
SITE(push_unmapped, "\tmov %rdi, %rsp", "push %rax");
SITE(do_ud2, "", "ud2");
SITE(bad_opcode, "", ".byte 0x06");
SITE(lock_reg, "", ".byte 0xf0, 0x01, 0xc0 /* lock add %eax, %eax */");
SITE(div_zero, "\tmov $0, %edx\n\tmov $0, %ebx", "div %rbx");
SITE(div_overflow, "\tmovabs $0x8000000000000000, %rax\n\tmov $-1, %rdx\n\tmov $-1, %rbx", "idiv %rbx");
SITE(do_int3, "", "int3");
SITE(int_3, "", ".byte 0xcd, 0x03 /* int $3, which gas makes int3 */");
SITE(int1, "", ".byte 0xf1");
SITE(load_bus, "", "mov 16(%rdi), %rax");

static const char *regname(int i) {
	switch (i) {
	case REG_R8: return "r8";
	case REG_R9: return "r9";
	case REG_R10: return "r10";
	case REG_R11: return "r11";
	case REG_R12: return "r12";
	case REG_R13: return "r13";
	case REG_R14: return "r14";
	case REG_R15: return "r15";
	case REG_RDI: return "rdi";
	case REG_RSI: return "rsi";
	case REG_RBP: return "rbp";
	case REG_RBX: return "rbx";
	case REG_RDX: return "rdx";
	case REG_RAX: return "rax";
	case REG_RCX: return "rcx";
	case REG_RSP: return "rsp";
	case REG_RIP: return "rip";
	}
	return "?";
}

/* rel prints v as is if it is small or one of the constants, else
 * relative to what it is near: the faulting instruction, the argument,
 * the site's stack pointer; else as "?" (an address that moves with the
 * load address). */
static void rel(u64 v) {
	long d;
	if (v < 0x10000 || (v >> 32) == (v & 0xffffffff) || v == 0x8000000000000000ul || v == ~0ul) {
		puthex(v);
		return;
	}
	if ((d = (long)(v - site_ip)) >= -256 && d <= 256) {
		puts_("ip");
	} else if ((d = (long)(v - site_arg)) >= -4096 && d <= 4096) {
		puts_("arg");
	} else if ((d = (long)(v - site_sp)) >= -4096 && d <= 4096) {
		puts_("sp");
	} else {
		puts_("?");
		return;
	}
	if (d >= 0)
		puts_("+");
	putn(d);
}

static void report(int sig, rt_siginfo *si, void *ucv) {
	rt_ucontext *uc = ucv;
	u64 *g = uc->gregs;
	say("  si_signo ", si->si_signo);
	say("  si_code ", si->si_code);
	puts_("  si_addr ");
	rel((u64)si->u.addr);
	say("\n  trapno ", (long)g[REG_TRAPNO]);
	sayhex("  err ", g[REG_ERR]);
	/* cr2 is the page fault's address; after another fault, whatever
	 * the last page fault left. */
	if (g[REG_TRAPNO] == 14) {
		puts_("  cr2 ");
		rel(g[REG_CR2]);
		puts_("\n");
	}
	puts_("  rip ");
	rel(g[REG_RIP]);
	puts_(" rsp ");
	rel(g[REG_RSP]);
	if (g[REG_RSP] != site_sp && g[REG_RSP] != site_arg) {
		puts_(" [rsp] ");
		rel(*(u64 *)g[REG_RSP]);
	}
	/* CF PF AF ZF SF IF DF OF */
	sayhex(" flags ", g[REG_EFL] & 0xed5);
	puts_("  cs ");
	puthex(g[REG_CSGSFS] & 0xffff);
	for (int i = REG_R8; i <= REG_RCX; i++) {
		puts_(i % 4 == 0 ? "\n  " : " ");
		puts_(regname(i));
		puts_(" ");
		rel(g[i]);
	}
	puts_("\n");
	puts_(uc->uc_sigmask & SIGBIT(sig) ? "  signal in uc_sigmask: yes\n" : "  signal in uc_sigmask: no\n");
	puts_(rt_blocked() & SIGBIT(sig) ? "  blocked inside: yes\n" : "  blocked inside: no\n");
	g[REG_RIP] = (u64)site_resume;
}

static void run(const char *what, void (*site)(u64), void *arg) {
	puts_(what);
	puts_(":\n");
	site((u64)arg);
}

int main(int argc, char **argv, char **envp) {
	if (argc < 2)
		return 2;
	rt_stack ss = {altstack, 0, sizeof altstack};
	rt_sigaltstack(&ss, 0);
	for (int s = SIGILL; s <= SIGSEGV; s++)
		rt_handle(s, report, SA_ONSTACK, 0);
	const char *g = argv[1];
	if (streq(g, "segv")) {
		/* A read-only page, and the page after it unmapped. */
		char *ro = rt_mmap(0, 8192, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), *hole = ro + 4096;
		rt_munmap(hole, 4096);
		run("load from an unmapped page", load_unmapped, hole + 24);
		run("store to a read-only page", store_readonly, ro);
		run("call to an unmapped page", call_unmapped, hole + 8);
		run("load from a non-canonical address", load_noncanonical, (void *)0x8000000000000000ul);
		run("hlt", do_hlt, 0);
		run("int $0x41", int_41, 0);
		run("push with rsp at an unmapped page", push_unmapped, hole + 4096);
	} else if (streq(g, "ill")) {
		run("ud2", do_ud2, 0);
		run("invalid opcode", bad_opcode, 0);
		run("lock on a register operand", lock_reg, 0);
	} else if (streq(g, "fpe")) {
		run("division by zero", div_zero, 0);
		run("division overflow", div_overflow, 0);
	} else if (streq(g, "trap")) {
		run("int3", do_int3, 0);
		run("int $3", int_3, 0);
		run("int1", int1, 0);
	} else if (streq(g, "bus") || streq(g, "busshared")) {
		int fd = (int)rt_memfd("faultinfo");
		char *m = rt_mmap(0, 4096, PROT_READ, streq(g, "bus") ? MAP_PRIVATE : MAP_SHARED, fd, 0);
		if (fd < 0 || (long)m < 0 && (long)m > -4096)
			return 3;
		run("load past the end of the file", load_bus, m);
	} else {
		return 2;
	}
	puts_("done\n");
	return 0;
}

/* faultrun: runs generated code that faults, for the differential fault
 * fuzzer (jit's FuzzFaults), and prints what the fault's handler is
 * given. argv[1] is a file:
 *
 *	"RVFAULT1"           magic
 *	u64 flagmask         the flags to print (the others are undefined at
 *	                     the fault)
 *	u64 regs[17]         rax rcx rdx rbx rsp rbp rsi rdi r8-r15, rflags:
 *	                     the registers the code starts with, but rsp (the
 *	                     top of a stack of its own) and r15 (its data)
 *	u64 data[16]         the first 128 bytes of its data
 *	u64 n, code[n]       the code, entered at its first byte
 *
 * The code is mapped read-write-execute; its data is a read-write page
 * followed by a PROT_NONE one; its stack has 64 KiB. Handlers for
 * SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGTRAP, on an alternate stack,
 * print si_signo, si_code, si_addr, rip, rsp, the flags, every general
 * register, the top of the stack and the data, each value as a constant
 * or relative to the code, the data or the stack (which move with where
 * they are mapped), and exit 0.
 *
 * With argv[2] "nohandler" it prints where the code, data and stack are
 * ("bases CODE DATA STACK" in hex) and installs no handler: the process
 * dies of the fault.
 */
#include "rt.h"

#define CODE_MAX (64 << 10)
#define STACK_SIZE (64 << 10)

static unsigned char in[CODE_MAX + 512];
static unsigned char *code, *data, *stack;
static u64 flagmask;
static u64 regs[17];
static char altstack[64 << 10] __attribute__((aligned(16)));

/* run_code loads the registers from r (regs' layout) and jumps to e; it
 * does not return. */
void run_code(u64 *r, void *e) __attribute__((noreturn, visibility("hidden")));
__asm__(".text\n.align 16\nrun_code:\n"
	"\tmov %rsi, run_entry(%rip)\n"
	"\tpush 128(%rdi)\n\tpopfq\n"
	"\tmov 8(%rdi), %rcx\n\tmov 16(%rdi), %rdx\n\tmov 24(%rdi), %rbx\n\tmov 32(%rdi), %rsp\n"
	"\tmov 40(%rdi), %rbp\n\tmov 48(%rdi), %rsi\n\tmov 64(%rdi), %r8\n\tmov 72(%rdi), %r9\n"
	"\tmov 80(%rdi), %r10\n\tmov 88(%rdi), %r11\n\tmov 96(%rdi), %r12\n\tmov 104(%rdi), %r13\n"
	"\tmov 112(%rdi), %r14\n\tmov 120(%rdi), %r15\n\tmov 0(%rdi), %rax\n\tmov 56(%rdi), %rdi\n"
	"\tjmp *run_entry(%rip)\n"
	".data\n.align 8\nrun_entry: .quad 0\n.text\n");

/* val prints v as "code+N", "data+N" or "stack+N" within one of them
 * (the data with its PROT_NONE page, the stack with its top), else in
 * hex. The three are mapped apart from each other, but may be adjacent:
 * only an address within one is relative to it. */
static void val(u64 v) {
	const char *base;
	u64 d;
	if ((d = v - (u64)code) < CODE_MAX)
		base = "code";
	else if ((d = v - (u64)data) < 2 * 4096)
		base = "data";
	else if ((d = v - (u64)stack) <= STACK_SIZE)
		base = "stack";
	else {
		puthex(v);
		return;
	}
	puts_(base);
	puts_("+");
	putn((long)d);
}

static void regval(const char *name, u64 v) {
	puts_(name);
	puts_(" ");
	val(v);
	puts_("\n");
}

static void report(int sig, rt_siginfo *si, void *ucv) {
	rt_ucontext *uc = ucv;
	u64 *g = uc->gregs;
	say("si_signo ", si->si_signo);
	say("si_code ", si->si_code);
	/* si_addr: the fault address of SIGSEGV and SIGBUS, the
	 * instruction of the others (0 for some: the kernel's). */
	regval("si_addr", (u64)si->u.addr);
	regval("rip", g[REG_RIP]);
	sayhex("flags ", g[REG_EFL] & flagmask);
	static const char names[][4] = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
					"r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"};
	static const unsigned char idx[] = {REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP, REG_RSI, REG_RDI,
					    REG_R8, REG_R9, REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15};
	for (int i = 0; i < 16; i++)
		regval(names[i], g[idx[i]]);
	u64 sp = g[REG_RSP];
	for (int i = 0; i < 4; i++) {
		u64 a = sp + 8 * i;
		if (a < (u64)stack || a + 8 > (u64)stack + STACK_SIZE)
			break;
		puts_("[rsp+");
		putn(8 * i);
		puts_("]");
		regval("", *(u64 *)a);
	}
	for (int i = 0; i < 16; i++) {
		puts_("data[");
		putn(i);
		puts_("]");
		regval("", ((u64 *)data)[i]);
	}
	rt_exit(0);
}

int main(int argc, char **argv, char **envp) {
	if (argc < 2) {
		puts_("usage: faultrun FILE [nohandler]\n");
		return 2;
	}
	long fd = sys3(2, argv[1], 0, 0);
	if (fd < 0) {
		say("open: ", fd);
		return 2;
	}
	long n = 0, r;
	while (n < (long)sizeof in && (r = rt_read((int)fd, in + n, (long)sizeof in - n)) > 0)
		n += r;
	rt_close((int)fd);
	const u64 *h = (const u64 *)in;
	/* magic, flagmask, regs, data, n: 8 + 8 + 17*8 + 16*8 + 8 bytes. */
	long hdr = 8 + 8 + 17 * 8 + 16 * 8 + 8;
	if (n < hdr || h[0] != 0x31544c5541465652ul) { /* "RVFAULT1" */
		puts_("bad input\n");
		return 2;
	}
	flagmask = h[1];
	for (int i = 0; i < 17; i++)
		regs[i] = h[2 + i];
	u64 len = h[2 + 17 + 16];
	if (len > CODE_MAX || hdr + (long)len > n) {
		puts_("bad code length\n");
		return 2;
	}
	code = rt_mmap(0, CODE_MAX, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	data = rt_mmap(0, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	stack = rt_mmap(0, STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (code == MAP_FAILED || data == MAP_FAILED || stack == MAP_FAILED || rt_mprotect(data + 4096, 4096, PROT_NONE) != 0) {
		puts_("mmap failed\n");
		return 3;
	}
	for (u64 i = 0; i < len; i++)
		code[i] = in[hdr + i];
	for (int i = 0; i < 128; i++)
		data[i] = in[8 + 8 + 17 * 8 + i];
	if (argc > 2 && streq(argv[2], "nohandler")) {
		puts_("bases ");
		puthex((u64)code);
		puts_(" ");
		puthex((u64)data);
		puts_(" ");
		puthex((u64)stack);
		puts_("\n");
	} else {
		rt_stack ss = {altstack, 0, sizeof altstack};
		rt_sigaltstack(&ss, 0);
		for (int s = SIGILL; s <= SIGSEGV; s++)
			if (s == SIGILL || s == SIGTRAP || s == SIGBUS || s == SIGFPE || s == SIGSEGV)
				rt_handle(s, report, SA_ONSTACK, 0);
	}
	regs[4] = (u64)stack + STACK_SIZE - 256;
	regs[15] = (u64)data;
	run_code(regs, code);
}

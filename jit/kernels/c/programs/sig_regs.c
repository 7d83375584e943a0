/* sig_regs: rt_sigreturn restores every register. The program loads
 * known values into the general registers, the flags (DF), xmm0-15,
 * MXCSR and the x87 control word (and, as the processor has them, the
 * upper halves of ymm0-15, zmm0-31 and k1-k7), sends itself a signal
 * whose handler clobbers all of them, and prints what it finds once the
 * handler returned; the handler prints what it started with (the kernel
 * gives it a clean vector state and DF clear). Cases: sse, avx, avx512
 * (skipped with a line saying so where the processor lacks them),
 * fpnull (the handler sets uc_mcontext.fpstate to 0: the vector state is
 * reset), fpedit (the handler writes xmm3 into the frame's XSAVE area:
 * it comes back with that value), badmxcsr and badheader (an XSAVE area
 * XRSTOR refuses: rt_sigreturn fails with SIGSEGV), fxonly (no
 * FP_XSTATE_MAGIC1: the legacy area alone comes back, xmm5 edited). */
#include "rt.h"

/* What goes in and comes out. */
unsigned long gin[16], gout[16], flags_out, rsp_in, rsp_out;
unsigned char xin[16][16] __attribute__((aligned(64))), xout[16][16] __attribute__((aligned(64)));
unsigned char yin[16][32] __attribute__((aligned(64))), yout[16][32] __attribute__((aligned(64)));
unsigned char zin[32][64] __attribute__((aligned(64))), zout[32][64] __attribute__((aligned(64)));
unsigned long kin[8], kout[8];
unsigned mxcsr_in = 0x7f80, mxcsr_out, mxcsr_h;
unsigned short fcw_in = 0x027f, fcw_out, fcw_h;
unsigned long hflags;
unsigned char hx0[16] __attribute__((aligned(16)));
int mode; /* 0 sse, 1 avx, 2 avx512 */
extern char after_syscall[];

/* run(pid, sig): loads everything, kill(pid, sig), stores everything. */
void run(long pid, long sig);
__asm__(".text\n.globl run\nrun:\n"
	"\tpush %rbx\n\tpush %rbp\n\tpush %r12\n\tpush %r13\n\tpush %r14\n\tpush %r15\n"
	"\tldmxcsr mxcsr_in(%rip)\n\tfldcw fcw_in(%rip)\n"
	"\tcmpl $1, mode(%rip)\n\tje 1f\n\tcmpl $2, mode(%rip)\n\tje 2f\n"
	"\tmovdqu xin+0(%rip), %xmm0\n\tmovdqu xin+16(%rip), %xmm1\n\tmovdqu xin+32(%rip), %xmm2\n\tmovdqu xin+48(%rip), %xmm3\n"
	"\tmovdqu xin+64(%rip), %xmm4\n\tmovdqu xin+80(%rip), %xmm5\n\tmovdqu xin+96(%rip), %xmm6\n\tmovdqu xin+112(%rip), %xmm7\n"
	"\tmovdqu xin+128(%rip), %xmm8\n\tmovdqu xin+144(%rip), %xmm9\n\tmovdqu xin+160(%rip), %xmm10\n\tmovdqu xin+176(%rip), %xmm11\n"
	"\tmovdqu xin+192(%rip), %xmm12\n\tmovdqu xin+208(%rip), %xmm13\n\tmovdqu xin+224(%rip), %xmm14\n\tmovdqu xin+240(%rip), %xmm15\n"
	"\tjmp 3f\n"
	"1:\n"
	"\tvmovdqu yin+0(%rip), %ymm0\n\tvmovdqu yin+32(%rip), %ymm1\n\tvmovdqu yin+64(%rip), %ymm2\n\tvmovdqu yin+96(%rip), %ymm3\n"
	"\tvmovdqu yin+128(%rip), %ymm4\n\tvmovdqu yin+160(%rip), %ymm5\n\tvmovdqu yin+192(%rip), %ymm6\n\tvmovdqu yin+224(%rip), %ymm7\n"
	"\tvmovdqu yin+256(%rip), %ymm8\n\tvmovdqu yin+288(%rip), %ymm9\n\tvmovdqu yin+320(%rip), %ymm10\n\tvmovdqu yin+352(%rip), %ymm11\n"
	"\tvmovdqu yin+384(%rip), %ymm12\n\tvmovdqu yin+416(%rip), %ymm13\n\tvmovdqu yin+448(%rip), %ymm14\n\tvmovdqu yin+480(%rip), %ymm15\n"
	"\tjmp 3f\n"
	"2:\n"
	"\tlea zin(%rip), %rax\n"
	"\tvmovdqu64 0(%rax), %zmm0\n\tvmovdqu64 64(%rax), %zmm1\n\tvmovdqu64 128(%rax), %zmm2\n\tvmovdqu64 192(%rax), %zmm3\n"
	"\tvmovdqu64 256(%rax), %zmm4\n\tvmovdqu64 320(%rax), %zmm5\n\tvmovdqu64 384(%rax), %zmm6\n\tvmovdqu64 448(%rax), %zmm7\n"
	"\tvmovdqu64 512(%rax), %zmm8\n\tvmovdqu64 576(%rax), %zmm9\n\tvmovdqu64 640(%rax), %zmm10\n\tvmovdqu64 704(%rax), %zmm11\n"
	"\tvmovdqu64 768(%rax), %zmm12\n\tvmovdqu64 832(%rax), %zmm13\n\tvmovdqu64 896(%rax), %zmm14\n\tvmovdqu64 960(%rax), %zmm15\n"
	"\tvmovdqu64 1024(%rax), %zmm16\n\tvmovdqu64 1088(%rax), %zmm17\n\tvmovdqu64 1152(%rax), %zmm18\n\tvmovdqu64 1216(%rax), %zmm19\n"
	"\tvmovdqu64 1280(%rax), %zmm20\n\tvmovdqu64 1344(%rax), %zmm21\n\tvmovdqu64 1408(%rax), %zmm22\n\tvmovdqu64 1472(%rax), %zmm23\n"
	"\tvmovdqu64 1536(%rax), %zmm24\n\tvmovdqu64 1600(%rax), %zmm25\n\tvmovdqu64 1664(%rax), %zmm26\n\tvmovdqu64 1728(%rax), %zmm27\n"
	"\tvmovdqu64 1792(%rax), %zmm28\n\tvmovdqu64 1856(%rax), %zmm29\n\tvmovdqu64 1920(%rax), %zmm30\n\tvmovdqu64 1984(%rax), %zmm31\n"
	"\tkmovw kin+8(%rip), %k1\n\tkmovw kin+16(%rip), %k2\n\tkmovw kin+24(%rip), %k3\n\tkmovw kin+32(%rip), %k4\n"
	"\tkmovw kin+40(%rip), %k5\n\tkmovw kin+48(%rip), %k6\n\tkmovw kin+56(%rip), %k7\n"
	"3:\n"
	"\tmov %rdi, gin+56(%rip)\n"
	"\tmov gin+24(%rip), %rbx\n\tmov gin+40(%rip), %rbp\n\tmov gin+16(%rip), %rdx\n"
	"\tmov gin+64(%rip), %r8\n\tmov gin+72(%rip), %r9\n\tmov gin+80(%rip), %r10\n"
	"\tmov gin+96(%rip), %r12\n\tmov gin+104(%rip), %r13\n\tmov gin+112(%rip), %r14\n\tmov gin+120(%rip), %r15\n"
	"\tmov %rsp, rsp_in(%rip)\n"
	"\tmov $62, %eax\n\tstd\n\tsyscall\n"
	".globl after_syscall\nafter_syscall:\n"
	"\tpushfq\n\tpopq flags_out(%rip)\n\tcld\n"
	"\tmov %rax, gout+0(%rip)\n\tmov %rcx, gout+8(%rip)\n\tmov %rdx, gout+16(%rip)\n\tmov %rbx, gout+24(%rip)\n"
	"\tmov %rsp, rsp_out(%rip)\n\tmov %rbp, gout+40(%rip)\n\tmov %rsi, gout+48(%rip)\n\tmov %rdi, gout+56(%rip)\n"
	"\tmov %r8, gout+64(%rip)\n\tmov %r9, gout+72(%rip)\n\tmov %r10, gout+80(%rip)\n\tmov %r11, gout+88(%rip)\n"
	"\tmov %r12, gout+96(%rip)\n\tmov %r13, gout+104(%rip)\n\tmov %r14, gout+112(%rip)\n\tmov %r15, gout+120(%rip)\n"
	"\tstmxcsr mxcsr_out(%rip)\n\tfnstcw fcw_out(%rip)\n"
	"\tcmpl $1, mode(%rip)\n\tje 1f\n\tcmpl $2, mode(%rip)\n\tje 2f\n"
	"\tmovdqu %xmm0, xout+0(%rip)\n\tmovdqu %xmm1, xout+16(%rip)\n\tmovdqu %xmm2, xout+32(%rip)\n\tmovdqu %xmm3, xout+48(%rip)\n"
	"\tmovdqu %xmm4, xout+64(%rip)\n\tmovdqu %xmm5, xout+80(%rip)\n\tmovdqu %xmm6, xout+96(%rip)\n\tmovdqu %xmm7, xout+112(%rip)\n"
	"\tmovdqu %xmm8, xout+128(%rip)\n\tmovdqu %xmm9, xout+144(%rip)\n\tmovdqu %xmm10, xout+160(%rip)\n\tmovdqu %xmm11, xout+176(%rip)\n"
	"\tmovdqu %xmm12, xout+192(%rip)\n\tmovdqu %xmm13, xout+208(%rip)\n\tmovdqu %xmm14, xout+224(%rip)\n\tmovdqu %xmm15, xout+240(%rip)\n"
	"\tjmp 3f\n"
	"1:\n"
	"\tvmovdqu %ymm0, yout+0(%rip)\n\tvmovdqu %ymm1, yout+32(%rip)\n\tvmovdqu %ymm2, yout+64(%rip)\n\tvmovdqu %ymm3, yout+96(%rip)\n"
	"\tvmovdqu %ymm4, yout+128(%rip)\n\tvmovdqu %ymm5, yout+160(%rip)\n\tvmovdqu %ymm6, yout+192(%rip)\n\tvmovdqu %ymm7, yout+224(%rip)\n"
	"\tvmovdqu %ymm8, yout+256(%rip)\n\tvmovdqu %ymm9, yout+288(%rip)\n\tvmovdqu %ymm10, yout+320(%rip)\n\tvmovdqu %ymm11, yout+352(%rip)\n"
	"\tvmovdqu %ymm12, yout+384(%rip)\n\tvmovdqu %ymm13, yout+416(%rip)\n\tvmovdqu %ymm14, yout+448(%rip)\n\tvmovdqu %ymm15, yout+480(%rip)\n"
	"\tvzeroupper\n\tjmp 3f\n"
	"2:\n"
	"\tlea zout(%rip), %rax\n"
	"\tvmovdqu64 %zmm0, 0(%rax)\n\tvmovdqu64 %zmm1, 64(%rax)\n\tvmovdqu64 %zmm2, 128(%rax)\n\tvmovdqu64 %zmm3, 192(%rax)\n"
	"\tvmovdqu64 %zmm4, 256(%rax)\n\tvmovdqu64 %zmm5, 320(%rax)\n\tvmovdqu64 %zmm6, 384(%rax)\n\tvmovdqu64 %zmm7, 448(%rax)\n"
	"\tvmovdqu64 %zmm8, 512(%rax)\n\tvmovdqu64 %zmm9, 576(%rax)\n\tvmovdqu64 %zmm10, 640(%rax)\n\tvmovdqu64 %zmm11, 704(%rax)\n"
	"\tvmovdqu64 %zmm12, 768(%rax)\n\tvmovdqu64 %zmm13, 832(%rax)\n\tvmovdqu64 %zmm14, 896(%rax)\n\tvmovdqu64 %zmm15, 960(%rax)\n"
	"\tvmovdqu64 %zmm16, 1024(%rax)\n\tvmovdqu64 %zmm17, 1088(%rax)\n\tvmovdqu64 %zmm18, 1152(%rax)\n\tvmovdqu64 %zmm19, 1216(%rax)\n"
	"\tvmovdqu64 %zmm20, 1280(%rax)\n\tvmovdqu64 %zmm21, 1344(%rax)\n\tvmovdqu64 %zmm22, 1408(%rax)\n\tvmovdqu64 %zmm23, 1472(%rax)\n"
	"\tvmovdqu64 %zmm24, 1536(%rax)\n\tvmovdqu64 %zmm25, 1600(%rax)\n\tvmovdqu64 %zmm26, 1664(%rax)\n\tvmovdqu64 %zmm27, 1728(%rax)\n"
	"\tvmovdqu64 %zmm28, 1792(%rax)\n\tvmovdqu64 %zmm29, 1856(%rax)\n\tvmovdqu64 %zmm30, 1920(%rax)\n\tvmovdqu64 %zmm31, 1984(%rax)\n"
	"\tkmovw %k1, kout+8(%rip)\n\tkmovw %k2, kout+16(%rip)\n\tkmovw %k3, kout+24(%rip)\n\tkmovw %k4, kout+32(%rip)\n"
	"\tkmovw %k5, kout+40(%rip)\n\tkmovw %k6, kout+48(%rip)\n\tkmovw %k7, kout+56(%rip)\n"
	"\tvzeroupper\n"
	"3:\n"
	"\tmov $0x1f80, %eax\n\tpush %rax\n\tldmxcsr (%rsp)\n\tpop %rax\n"
	"\tmovw $0x37f, -8(%rsp)\n\tfldcw -8(%rsp)\n"
	"\tpop %r15\n\tpop %r14\n\tpop %r13\n\tpop %r12\n\tpop %rbp\n\tpop %rbx\n\tret\n");

/* The handler: records DF, MXCSR, the x87 control word and xmm0 as it
 * starts, then clobbers every register it can. */
extern void h_clobber(void);
__asm__(".text\n.globl h_clobber\nh_clobber:\n"
	"\tpushfq\n\tpopq hflags(%rip)\n\tstmxcsr mxcsr_h(%rip)\n\tfnstcw fcw_h(%rip)\n\tmovdqu %xmm0, hx0(%rip)\n"
	"\tpcmpeqb %xmm0, %xmm0\n\tpcmpeqb %xmm1, %xmm1\n\tpcmpeqb %xmm2, %xmm2\n\tpcmpeqb %xmm3, %xmm3\n"
	"\tpcmpeqb %xmm4, %xmm4\n\tpcmpeqb %xmm5, %xmm5\n\tpcmpeqb %xmm6, %xmm6\n\tpcmpeqb %xmm7, %xmm7\n"
	"\tpcmpeqb %xmm8, %xmm8\n\tpcmpeqb %xmm9, %xmm9\n\tpcmpeqb %xmm10, %xmm10\n\tpcmpeqb %xmm11, %xmm11\n"
	"\tpcmpeqb %xmm12, %xmm12\n\tpcmpeqb %xmm13, %xmm13\n\tpcmpeqb %xmm14, %xmm14\n\tpcmpeqb %xmm15, %xmm15\n"
	"\tcmpl $1, mode(%rip)\n\tjb 3f\n"
	"\tvpcmpeqb %ymm0, %ymm0, %ymm0\n\tvpcmpeqb %ymm1, %ymm1, %ymm1\n\tvpcmpeqb %ymm7, %ymm7, %ymm7\n\tvpcmpeqb %ymm15, %ymm15, %ymm15\n"
	"\tcmpl $2, mode(%rip)\n\tjb 3f\n"
	"\tvpternlogd $0xff, %zmm0, %zmm0, %zmm0\n\tvpternlogd $0xff, %zmm9, %zmm9, %zmm9\n"
	"\tvpternlogd $0xff, %zmm16, %zmm16, %zmm16\n\tvpternlogd $0xff, %zmm31, %zmm31, %zmm31\n"
	"\tkxnorw %k1, %k1, %k1\n\tkxnorw %k7, %k7, %k7\n"
	"3:\n"
	"\tmov $0x3f00, %eax\n\tpush %rax\n\tldmxcsr (%rsp)\n\tpop %rax\n"
	"\tmovw $0x7f, -8(%rsp)\n\tfldcw -8(%rsp)\n"
	"\tmov $-1, %rax\n\tmov $-1, %rbx\n\tmov $-1, %rcx\n\tmov $-1, %rdx\n\tmov $-1, %rsi\n\tmov $-1, %rdi\n\tmov $-1, %rbp\n"
	"\tmov $-1, %r8\n\tmov $-1, %r9\n\tmov $-1, %r10\n\tmov $-1, %r11\n\tmov $-1, %r12\n\tmov $-1, %r13\n"
	"\tmov $-1, %r14\n\tmov $-1, %r15\n\tstd\n\tret\n");

/* fpnull and fpedit: C handlers that edit the frame, then clobber.
 * h_edit_c leaves the vector registers alone (general-regs-only: no
 * vectorized loop), so that h_clobber still records the state the
 * kernel gave the handler. */
static int edit;
__attribute__((target("general-regs-only"))) void h_edit_c(int sig, void *si, rt_ucontext *uc) {
	unsigned char *fpstate = uc->fpregs;
	(void)sig, (void)si;
	switch (edit) {
	case 0:
		uc->fpregs = 0;
		break;
	case 1:
		for (int i = 0; i < 16; i++)
			fpstate[160 + 3 * 16 + i] = (unsigned char)(0xa0 + i);
		break;
	case 2: /* reserved MXCSR bits: XRSTOR faults, rt_sigreturn SIGSEGV */
		*(unsigned *)(fpstate + 24) = 0xffffffff;
		break;
	case 3: /* a reserved header byte: the same */
		fpstate[512 + 20] = 1;
		break;
	case 4: /* no MAGIC1: the legacy area alone is restored */
		*(unsigned *)(fpstate + 464) = 0;
		for (int i = 0; i < 16; i++)
			fpstate[160 + 5 * 16 + i] = (unsigned char)(0xb0 + i);
		break;
	}
}
extern void h_edit(void);
__asm__(".text\n.globl h_edit\nh_edit:\n\tsub $8, %rsp\n\tcall h_edit_c\n\tadd $8, %rsp\n\tjmp h_clobber\n");

static void hex(const unsigned char *b, int n) {
	static const char d[] = "0123456789abcdef";
	char s[130];
	for (int i = 0; i < n; i++) {
		s[2 * i] = d[b[n - 1 - i] >> 4];
		s[2 * i + 1] = d[b[n - 1 - i] & 15];
	}
	s[2 * n] = 0;
	puts_(s);
}

/* vecs prints n vector registers of size bytes each, stored one after
 * the other from b: "NAMEi HEX" a line. */
static void vecs(const char *name, const unsigned char *b, int n, int size) {
	for (int i = 0; i < n; i++) {
		puts_(name);
		putn(i);
		puts_(" ");
		hex(b + i * size, size);
		puts_("\n");
	}
}

static void fill(unsigned char *b, int n, int seed) {
	for (int i = 0; i < n; i++)
		b[i] = (unsigned char)(seed * 37 + i * 11 + 1);
}

static int has(int what) {
	unsigned a, b, c, d;
	__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
	if (!(c & (1u << 27)) || !(c & (1u << 28)))
		return 0;
	unsigned lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	if ((lo & 6) != 6)
		return 0;
	if (what == 1)
		return 1;
	__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(0));
	return (b & (1u << 16)) && (lo & 0xe0) == 0xe0;
}

int main(int argc, char **argv, char **envp) {
	(void)envp;
	if (argc < 2)
		return 100;
	const char *t = argv[1];
	void *h = h_clobber;
	unsigned long fl = 0;
	if (streq(t, "avx"))
		mode = 1;
	else if (streq(t, "avx512"))
		mode = 2;
	else if (streq(t, "fpnull") || streq(t, "fpedit") || streq(t, "badmxcsr") || streq(t, "badheader") || streq(t, "fxonly")) {
		h = h_edit, fl = SA_SIGINFO;
		edit = streq(t, "fpedit") ? 1 : streq(t, "badmxcsr") ? 2 : streq(t, "badheader") ? 3 : streq(t, "fxonly") ? 4 : 0;
		rt_nocore();
	} else if (!streq(t, "sse"))
		return 101;
	if (mode && !has(mode)) {
		puts_("the processor lacks ");
		puts_(t);
		puts_("\n");
		return 0;
	}
	rt_install(SIGUSR1, h, fl, 0);
	for (int i = 0; i < 16; i++)
		gin[i] = 0x0101010101010101UL * (unsigned long)(i + 1) ^ 0x8000000000000000UL;
	for (int i = 0; i < 16; i++)
		fill(xin[i], 16, i), fill(yin[i], 32, i);
	for (int i = 0; i < 32; i++)
		fill(zin[i], 64, i);
	for (int i = 1; i < 8; i++)
		kin[i] = (unsigned long)(0x1234 * i) & 0xffff;
	long pid = sys3(39, 0, 0, 0);
	run(pid, SIGUSR1);
	puts_("handler: df ");
	putn((hflags >> 10) & 1);
	puts_(" mxcsr ");
	puthex(mxcsr_h);
	puts_(" fcw ");
	puthex(fcw_h);
	puts_(" xmm0 ");
	hex(hx0, 16);
	puts_("\nafter: rax ");
	putn((long)gout[0]);
	puts_(" rcx_is_return ");
	putn(gout[1] == (unsigned long)after_syscall);
	puts_(" r11_df ");
	putn((gout[11] >> 10) & 1);
	puts_(" rdi_is_pid ");
	putn(gout[7] == (unsigned long)pid);
	puts_(" rsi ");
	putn((long)gout[6]);
	puts_(" rsp_same ");
	putn(rsp_in == rsp_out);
	puts_(" df ");
	putn((flags_out >> 10) & 1);
	puts_(" mxcsr ");
	puthex(mxcsr_out);
	puts_(" fcw ");
	puthex(fcw_out);
	puts_("\n");
	static const char *names[16] = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
					"r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"};
	for (int i = 0; i < 16; i++) {
		if (i == 0 || i == 1 || i == 4 || i == 6 || i == 7 || i == 11)
			continue;
		puts_(names[i]);
		puts_(" ");
		puts_(gout[i] == gin[i] ? "kept " : "CHANGED ");
		puthex(gout[i]);
		puts_("\n");
	}
	if (mode == 0)
		vecs("xmm", xout[0], 16, 16);
	else if (mode == 1)
		vecs("ymm", yout[0], 16, 32);
	else
		vecs("zmm", zout[0], 32, 64);
	for (int i = 1; i < 8 && mode == 2; i++) {
		puts_("k");
		putn(i);
		puts_(" ");
		puthex(kout[i]);
		puts_("\n");
	}
	return 0;
}

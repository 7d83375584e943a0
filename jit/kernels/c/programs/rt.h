/*
 * A freestanding runtime for the test programs: no libc, raw system
 * calls, a _start that calls main(argc, argv, envp) and exits with its
 * result. The programs are static executables that reachvm run loads and
 * runs under the translator, and that also run natively.
 */
typedef unsigned long u64;

static inline long sys6(long nr, long a, long b, long c, long d, long e, long f) {
	long ret;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9) : "rcx", "r11", "memory");
	return ret;
}
#define sys3(nr, a, b, c) sys6(nr, (long)(a), (long)(b), (long)(c), 0, 0, 0)

static inline long rt_strlen(const char *s) {
	long n = 0;
	while (s[n])
		n++;
	return n;
}
static inline void puts_(const char *s) { sys3(1, 1, s, rt_strlen(s)); }
static inline void putn(long v) {
	char b[24];
	int i = 23;
	int neg = v < 0;
	u64 u = neg ? -(u64)v : (u64)v;
	b[i] = 0;
	do {
		b[--i] = '0' + u % 10;
		u /= 10;
	} while (u);
	if (neg)
		b[--i] = '-';
	puts_(b + i);
}
static inline void puthex(u64 v) {
	char b[20];
	int i = 19;
	b[i] = 0;
	do {
		b[--i] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v);
	b[--i] = 'x';
	b[--i] = '0';
	puts_(b + i);
}
static inline int streq(const char *a, const char *b) {
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}
static inline long atol_(const char *s) {
	long v = 0;
	int neg = *s == '-';
	if (neg)
		s++;
	while (*s >= '0' && *s <= '9')
		v = v * 10 + (*s++ - '0');
	return neg ? -v : v;
}
static inline u64 atohex(const char *s) {
	u64 v = 0;
	if (s[0] == '0' && s[1] == 'x')
		s += 2;
	for (; *s; s++)
		v = v * 16 + (*s <= '9' ? *s - '0' : (*s | 32) - 'a' + 10);
	return v;
}

int main(int argc, char **argv, char **envp);

/*
 * A static PIE has no loader: the kernel maps it at a random base and
 * leaves the pointers in its data (kernels.c's table of entry points) to
 * the program, which libc's start-up code relocates. rt_relocate applies
 * the R_X86_64_RELATIVE relocations (DT_RELA and DT_RELR) before anything
 * reads such a pointer, found through the program's own ELF header (a
 * hidden symbol, reached PC-relatively: a GOT entry would itself be an
 * unrelocated pointer). An ET_EXEC build has nothing to relocate.
 */
extern unsigned char __ehdr_start[] __attribute__((visibility("hidden")));
static void rt_relocate(void) {
	u64 base = (u64)__ehdr_start;
	if (*(const unsigned short *)(base + 16) != 3) /* e_type: ET_DYN */
		return;
	const char *ph = (const char *)(base + *(const u64 *)(base + 32)); /* e_phoff */
	int phnum = *(const unsigned short *)(base + 56), phentsize = *(const unsigned short *)(base + 54);
	const u64 *d = 0;
	for (int i = 0; i < phnum; i++, ph += phentsize)
		if (*(const unsigned *)ph == 2) /* PT_DYNAMIC */
			d = (const u64 *)(base + *(const u64 *)(ph + 16));
	if (!d)
		return;
	u64 rela = 0, relasz = 0, relr = 0, relrsz = 0;
	for (; d[0]; d += 2) {
		switch (d[0]) {
		case 7: rela = d[1]; break;    /* DT_RELA */
		case 8: relasz = d[1]; break;  /* DT_RELASZ */
		case 36: relr = d[1]; break;   /* DT_RELR */
		case 35: relrsz = d[1]; break; /* DT_RELRSZ */
		}
	}
	for (u64 i = 0; i + 24 <= relasz; i += 24) {
		const u64 *r = (const u64 *)(base + rela + i);
		if ((r[1] & 0xffffffff) == 8) /* R_X86_64_RELATIVE */
			*(u64 *)(base + r[0]) = base + r[2];
	}
	u64 *where = 0;
	for (u64 i = 0; i + 8 <= relrsz; i += 8) {
		u64 e = *(const u64 *)(base + relr + i);
		if (!(e & 1)) {
			where = (u64 *)(base + e);
			*where++ += base;
			continue;
		}
		for (int b = 1; b < 64; b++)
			if (e >> b & 1)
				where[b - 1] += base;
		where += 63;
	}
}

__attribute__((used)) void start_c(long *sp) {
	rt_relocate();
	int argc = (int)sp[0];
	char **argv = (char **)(sp + 1);
	char **envp = argv + argc + 1;
	sys3(231, main(argc, argv, envp), 0, 0);
	for (;;)
		;
}

__asm__(".globl _start\n_start:\n\txor %ebp, %ebp\n\tmov %rsp, %rdi\n\tand $-16, %rsp\n\tcall start_c\n\thlt\n");

/*
 * Signals, timers, pipes and memory, for the transparency tests: the
 * kernel's structures (x86-64 layouts) and raw calls, a restorer that
 * returns from a handler through rt_sigreturn, and a jump buffer to leave
 * a handler by (sigsetjmp/siglongjmp).
 */
#define SIGHUP 1
#define SIGINT 2
#define SIGILL 4
#define SIGTRAP 5
#define SIGABRT 6
#define SIGBUS 7
#define SIGFPE 8
#define SIGKILL 9
#define SIGUSR1 10
#define SIGSEGV 11
#define SIGUSR2 12
#define SIGPIPE 13
#define SIGALRM 14
#define SIGTERM 15

#define SA_SIGINFO 0x4ul
#define SA_ONSTACK 0x08000000ul
#define SA_RESTART 0x10000000ul
#define SA_NODEFER 0x40000000ul
#define SA_RESETHAND 0x80000000ul
#define SA_RESTORER 0x04000000ul
#define SIG_DFL ((void *)0)
#define SIG_IGN ((void *)1)

#define SIG_BLOCK 0
#define SIG_UNBLOCK 1
#define SIG_SETMASK 2
#define SIGBIT(s) (1ul << ((s) - 1))

#define SI_USER 0
#define SI_KERNEL 0x80
#define SI_TKILL (-6)

#define PROT_NONE 0
#define PROT_READ 1
#define PROT_WRITE 2
#define PROT_EXEC 4
#define MAP_SHARED 0x01
#define MAP_PRIVATE 0x02
#define MAP_FIXED 0x10
#define MAP_ANONYMOUS 0x20
#define MAP_FAILED ((void *)-1)

#define EINTR 4

/* siginfo_t: the fields the tests read. */
typedef struct {
	int si_signo, si_errno, si_code, pad_;
	union {
		/* SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP */
		void *addr;
		/* kill, tgkill; value: rt_sigqueueinfo's (SI_QUEUE) */
		struct {
			int pid;
			unsigned uid;
			long value;
		} kill;
		char bytes_[112];
	} u;
} rt_siginfo;

/* Indices of uc_mcontext's general registers (the kernel's struct
 * sigcontext, in order). */
enum {
	REG_R8, REG_R9, REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15,
	REG_RDI, REG_RSI, REG_RBP, REG_RBX, REG_RDX, REG_RAX, REG_RCX, REG_RSP,
	REG_RIP, REG_EFL, REG_CSGSFS, REG_ERR, REG_TRAPNO, REG_OLDMASK, REG_CR2,
	NGREG
};

typedef struct {
	void *ss_sp;
	int ss_flags;
	u64 ss_size;
} rt_stack;
#define SS_ONSTACK 1
#define SS_DISABLE 2

/* ucontext_t as the kernel lays it out on the handler's stack. */
typedef struct {
	u64 uc_flags;
	void *uc_link;
	rt_stack uc_stack;
	u64 gregs[NGREG];
	void *fpregs;
	u64 reserved_[8];
	u64 uc_sigmask;
} rt_ucontext;

typedef void (*rt_handler)(int, rt_siginfo *, void *);

/* The kernel's struct sigaction (not libc's): mask last, 8 bytes. */
struct rt_kaction {
	void *handler;
	u64 flags;
	void (*restorer)(void);
	u64 mask;
};

/* rt_restorer is where a handler returns: rt_sigreturn. */
extern void rt_restorer(void) __attribute__((visibility("hidden")));
__asm__(".text\n.align 16\n.globl rt_restorer\n.hidden rt_restorer\n.type rt_restorer, @function\n"
	"rt_restorer:\n\tmov $15, %eax\n\tsyscall\n\thlt\n");

static inline long rt_sigaction(int sig, const struct rt_kaction *act, struct rt_kaction *old) {
	return sys6(13, sig, (long)act, (long)old, 8, 0, 0);
}

/* rt_install installs h for sig with flags (SA_SIGINFO only if given)
 * and mask, returning through rt_restorer; h may be SIG_DFL or SIG_IGN. */
static inline long rt_install(int sig, void *h, u64 flags, u64 mask) {
	struct rt_kaction a = {h, flags | SA_RESTORER, rt_restorer, mask};
	return rt_sigaction(sig, &a, 0);
}

/* rt_handle installs h as rt_install does, with SA_SIGINFO. */
static inline long rt_handle(int sig, void *h, u64 flags, u64 mask) {
	return rt_install(sig, h, flags | SA_SIGINFO, mask);
}

/* rt_handler_of returns sig's current handler. */
static inline void *rt_handler_of(int sig) {
	struct rt_kaction old = {0, 0, 0, 0};
	rt_sigaction(sig, 0, &old);
	return old.handler;
}

static inline long rt_sigprocmask(int how, const u64 *set, u64 *old) {
	return sys6(14, how, (long)set, (long)old, 8, 0, 0);
}
static inline u64 rt_blocked(void) {
	u64 m = 0;
	rt_sigprocmask(SIG_BLOCK, 0, &m);
	return m;
}
static inline u64 rt_sigpending(void) {
	u64 m = 0;
	sys3(127, &m, 8, 0);
	return m;
}
static inline long rt_sigaltstack(const rt_stack *ss, rt_stack *old) { return sys3(131, ss, old, 0); }
static inline long rt_getpid(void) { return sys3(39, 0, 0, 0); }
static inline long rt_gettid(void) { return sys3(186, 0, 0, 0); }
static inline long rt_getuid(void) { return sys3(102, 0, 0, 0); }
static inline long rt_kill(long pid, int sig) { return sys3(62, pid, sig, 0); }
static inline long rt_tgkill(long tgid, long tid, int sig) { return sys3(234, tgid, tid, sig); }

/* rt_setitimer arms ITIMER_REAL (SIGALRM) to fire after first
 * microseconds, then every interval (0: once); first 0 disarms it. */
static inline long rt_setitimer(long first, long interval) {
	long v[4] = {interval / 1000000, interval % 1000000, first / 1000000, first % 1000000};
	return sys3(38, 0, v, 0);
}
static inline long rt_alarm(unsigned s) { return sys3(37, s, 0, 0); }

/* rt_now_ns reads CLOCK_MONOTONIC, in nanoseconds. */
static inline long rt_now_ns(void) {
	long ts[2];
	sys3(228, 1, ts, 0);
	return ts[0] * 1000000000L + ts[1];
}

static inline long rt_read(int fd, void *b, long n) { return sys3(0, fd, b, n); }
static inline long rt_write(int fd, const void *b, long n) { return sys3(1, fd, b, n); }
static inline long rt_close(int fd) { return sys3(3, fd, 0, 0); }
static inline long rt_pipe(int fds[2]) { return sys3(22, fds, 0, 0); }
static inline void *rt_mmap(void *a, u64 n, int prot, int flags, int fd, long off) {
	return (void *)sys6(9, (long)a, (long)n, prot, flags, fd, off);
}
static inline long rt_munmap(void *a, u64 n) { return sys3(11, a, n, 0); }
static inline long rt_mprotect(void *a, u64 n, int prot) { return sys3(10, a, n, prot); }
static inline long rt_memfd(const char *name) { return sys3(319, name, 0, 0); }
static inline long rt_ftruncate(int fd, long n) { return sys3(77, fd, n, 0); }
static inline void rt_exit(int code) {
	sys3(231, code, 0, 0);
	for (;;)
		;
}

/* A jump buffer: rbx, rbp, r12-r15, rsp and the return address, and the
 * signal mask for rt_siglongjmp. */
typedef struct {
	u64 regs[8];
	u64 mask;
} rt_jmpbuf;

int rt_setjmp(rt_jmpbuf *b) __attribute__((returns_twice, visibility("hidden")));
void rt_longjmp(rt_jmpbuf *b, int v) __attribute__((noreturn, visibility("hidden")));
__asm__(".text\n.align 16\n.globl rt_setjmp\n.hidden rt_setjmp\n.type rt_setjmp, @function\n"
	"rt_setjmp:\n"
	"\tmov %rbx, 0(%rdi)\n\tmov %rbp, 8(%rdi)\n\tmov %r12, 16(%rdi)\n\tmov %r13, 24(%rdi)\n"
	"\tmov %r14, 32(%rdi)\n\tmov %r15, 40(%rdi)\n\tlea 8(%rsp), %rdx\n\tmov %rdx, 48(%rdi)\n"
	"\tmov (%rsp), %rdx\n\tmov %rdx, 56(%rdi)\n\txor %eax, %eax\n\tret\n"
	".globl rt_longjmp\n.hidden rt_longjmp\n.type rt_longjmp, @function\n"
	"rt_longjmp:\n"
	"\tmov %esi, %eax\n\ttest %eax, %eax\n\tjnz 1f\n\tinc %eax\n1:\n"
	"\tmov 0(%rdi), %rbx\n\tmov 8(%rdi), %rbp\n\tmov 16(%rdi), %r12\n\tmov 24(%rdi), %r13\n"
	"\tmov 32(%rdi), %r14\n\tmov 40(%rdi), %r15\n\tmov 48(%rdi), %rsp\n\tjmp *56(%rdi)\n");

/* rt_sigsetjmp saves the signal mask too, which rt_siglongjmp restores
 * (leaving a handler, whose signal is blocked while it runs). A macro, so
 * that rt_setjmp returns into its caller's frame. */
#define rt_sigsetjmp(b) (rt_sigprocmask(SIG_BLOCK, 0, &(b)->mask), rt_setjmp(b))
static inline void __attribute__((noreturn)) rt_siglongjmp(rt_jmpbuf *b, int v) {
	rt_sigprocmask(SIG_SETMASK, &b->mask, 0);
	rt_longjmp(b, v);
}

/* Output helpers: a labelled number and a labelled hex value on one
 * line. */
static inline void say(const char *label, long v) {
	puts_(label);
	putn(v);
	puts_("\n");
}
static inline void sayhex(const char *label, u64 v) {
	puts_(label);
	puthex(v);
	puts_("\n");
}

/* line and linex print a key and a number (decimal, or hex) on one line,
 * a space between them. */
static inline void line(const char *k, long v) {
	puts_(k);
	puts_(" ");
	putn(v);
	puts_("\n");
}
static inline void linex(const char *k, u64 v) {
	puts_(k);
	puts_(" ");
	puthex(v);
	puts_("\n");
}

/* call_print calls the code at p, `int f(void)`, and prints what it
 * returns on a line. */
static inline void call_print(const void *p) {
	putn(((int (*)(void))p)());
	puts_("\n");
}

/* RT_PAGE_FUNC(name, v) defines name, a function that returns v, alone
 * at the start of a page of the program's file: name - __ehdr_start is
 * its offset in the file, which the program maps or reads. */
#define RT_PAGE_FUNC(name, v) \
	__asm__(".section .text." #name ",\"ax\",@progbits\n" \
		".balign 4096\n" \
		".globl " #name "\n" #name ":\n" \
		"\tmovl $" #v ", %eax\n" \
		"\tret\n" \
		".balign 4096\n" \
		".previous\n"); \
	extern unsigned char name[]; \
	extern unsigned char __ehdr_start[]

/* rt_nocore sets RLIMIT_CORE to 0: a program a signal kills on purpose
 * leaves no core file. */
static inline void rt_nocore(void) {
	u64 lim[2] = {0, 0};
	sys3(160, 4, lim, 0); /* setrlimit(RLIMIT_CORE) */
}

/* rt_cap_stack lowers the stack's limit (RLIMIT_STACK) to n bytes if it
 * is higher: a runaway recursion then faults after n bytes, not never
 * where the limit is lifted. */
static inline void rt_cap_stack(u64 n) {
	u64 lim[2] = {0, 0};
	sys6(302, 0, 3, 0, (long)lim, 0, 0); /* prlimit64(0, RLIMIT_STACK) */
	if (lim[0] > n) {
		lim[0] = n;
		sys6(302, 0, 3, (long)lim, 0, 0, 0);
	}
}

/* rt_store writes v at p as one instruction the compiler cannot remove
 * or move: a null pointer's store faults instead of being deleted as
 * undefined. */
static inline void rt_store(void *p, long v) { __asm__ volatile("mov %1, (%0)" : : "r"(p), "r"(v) : "memory"); }

/*
 * Threads: raw clone with the flags glibc's pthread_create passes, a
 * futex, and a join on the word CLONE_CHILD_CLEARTID clears.
 */
#define CLONE_VM 0x00000100ul
#define CLONE_FS 0x00000200ul
#define CLONE_FILES 0x00000400ul
#define CLONE_SIGHAND 0x00000800ul
#define CLONE_THREAD 0x00010000ul
#define CLONE_SYSVSEM 0x00040000ul
#define CLONE_SETTLS 0x00080000ul
#define CLONE_PARENT_SETTID 0x00100000ul
#define CLONE_CHILD_CLEARTID 0x00200000ul
#define CLONE_CHILD_SETTID 0x01000000ul
/* RT_THREAD are glibc's flags for a new thread but the TLS. */
#define RT_THREAD (CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM | \
		   CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID)

#define FUTEX_WAIT 0
#define FUTEX_WAKE 1
#define FUTEX_PRIVATE 128

/* rt_clone makes clone(flags, stack, ptid, ctid, tls); the child runs
 * fn(arg) on stack (its top, which must not be null) and ends with
 * exit (the thread alone) and fn's result. The parent gets clone's
 * result. */
long rt_clone(u64 flags, void *stack, int *ptid, int *ctid, void *tls, int (*fn)(void *), void *arg)
	__attribute__((visibility("hidden")));
__asm__(".text\n.align 16\n.globl rt_clone\n.hidden rt_clone\n.type rt_clone, @function\n"
	"rt_clone:\n"
	"\tmov %rcx, %r10\n\tand $-16, %rsi\n\tsub $16, %rsi\n"
	"\tmov 8(%rsp), %rax\n\tmov %rax, 8(%rsi)\n\tmov %r9, (%rsi)\n"
	"\tmov $56, %eax\n\tsyscall\n\ttest %rax, %rax\n\tjnz 1f\n"
	"\txor %ebp, %ebp\n\tpop %rax\n\tpop %rdi\n\tcall *%rax\n"
	"\tmov %eax, %edi\n\tmov $60, %eax\n\tsyscall\n\thlt\n"
	"1:\n\tret\n");

static inline long rt_futex(volatile int *uaddr, int op, int val, const long *ts) {
	return sys6(202, (long)uaddr, op, val, (long)ts, 0, 0);
}

/* rt_join waits until the word a thread's CLONE_CHILD_CLEARTID names is
 * 0: the thread is gone. */
static inline void rt_join(volatile int *ctid) {
	int v;
	while ((v = *ctid) != 0)
		rt_futex(ctid, FUTEX_WAIT, v, 0);
}

/* rt_exit_thread ends the calling thread alone (exit, not exit_group). */
static inline void __attribute__((noreturn)) rt_exit_thread(int code) {
	for (;;)
		sys3(60, code, 0, 0);
}

static inline long rt_sched_yield(void) { return sys3(24, 0, 0, 0); }

/* rt_sleep_ms sleeps ms milliseconds (nanosleep). */
static inline void rt_sleep_ms(long ms) {
	long ts[2] = {ms / 1000, (ms % 1000) * 1000000};
	sys3(35, ts, 0, 0);
}

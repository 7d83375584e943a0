/* threads: application threads made with raw clone, one case per
 * argument: creation with CLONE_PARENT_SETTID, CLONE_CHILD_SETTID and
 * CLONE_CHILD_CLEARTID (joined through the futex the kernel wakes), a
 * thread's own TLS (CLONE_SETTLS), a futex mutex, exit of one thread
 * against exit_group, the main thread exiting first, tgkill to one
 * thread and kill to the process, a thread's fatal fault, and code one
 * thread runs changed by another. Every line
 * printed is the same natively and under reachvm. */
#include "rt.h"

#define STACK (256 << 10)
#define MAXT 16

struct th {
	/* ptid is written by CLONE_PARENT_SETTID, ctid by
	 * CLONE_CHILD_SETTID and cleared by CLONE_CHILD_CLEARTID. */
	int ptid;
	volatile int ctid;
	int idx;
	long ret, tid, result;
	/* ctid_seen: the child found ctid holding its tid. */
	int ctid_seen;
	/* tls is the thread's TLS block: tls[0] points to itself, as
	 * the x86-64 ABI's thread pointer does. */
	u64 tls[8];
	char *stack;
};
static struct th ths[MAXT];

static long nthreads(int argc, char **argv, int i, long def) {
	long n = argc > i ? atol_(argv[i]) : def;
	return n < 1 ? 1 : n > MAXT ? MAXT : n;
}

static long spawn(struct th *t, u64 flags, int (*fn)(void *)) {
	t->stack = rt_mmap(0, STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (t->stack == MAP_FAILED) {
		puts_("mmap failed\n");
		rt_exit(1);
	}
	t->tls[0] = (u64)t->tls;
	/* Not 0 before the child runs: CLONE_CHILD_SETTID writes the
	 * word only then, and a join would find 0 and not wait. */
	t->ctid = -1;
	t->ret = rt_clone(flags, t->stack + STACK, &t->ptid, (int *)&t->ctid, t->tls, fn, t);
	if (t->ret <= 0) {
		say("clone failed: ", t->ret);
		rt_exit(1);
	}
	return t->ret;
}

/* create: threads that each compute a sum and check their own tid. */
static int create_fn(void *arg) {
	struct th *t = arg;
	t->tid = rt_gettid();
	t->ctid_seen = t->ctid == t->tid;
	long s = 0;
	for (long i = 0; i <= (t->idx + 1) * 1000; i++)
		s += i;
	t->result = s;
	return 0;
}
static int t_create(long n, u64 extra, int (*fn)(void *)) {
	for (int i = 0; i < n; i++) {
		ths[i].idx = i;
		spawn(&ths[i], RT_THREAD | CLONE_CHILD_SETTID | extra, fn);
	}
	for (int i = 0; i < n; i++)
		rt_join(&ths[i].ctid);
	long me = rt_gettid();
	for (int i = 0; i < n; i++) {
		struct th *t = &ths[i];
		int distinct = t->tid != me;
		for (int j = 0; j < i; j++)
			distinct &= ths[j].tid != t->tid;
		puts_("thread ");
		putn(i);
		puts_(": ptid_is_ret ");
		putn(t->ptid == t->ret);
		puts_(" tid_is_ret ");
		putn(t->tid == t->ret);
		puts_(" ctid_was_tid ");
		putn(t->ctid_seen);
		puts_(" cleared ");
		putn(t->ctid == 0);
		puts_(" distinct ");
		putn(distinct);
		puts_(" result ");
		putn(t->result);
		puts_("\n");
	}
	return 0;
}

/* tls: each thread reads its thread pointer (%fs:0) and a word of its
 * TLS block through %fs. */
static int tls_fn(void *arg) {
	struct th *t = arg;
	u64 self, word;
	t->tls[1] = 1000 + t->idx;
	__asm__ volatile("mov %%fs:0, %0\n\tmov %%fs:8, %1" : "=r"(self), "=r"(word));
	t->tid = rt_gettid();
	t->ctid_seen = t->ctid == t->tid;
	t->result = (self == (u64)t->tls) * 1000000 + word;
	return 0;
}

/* mutex: threads increment a counter under a futex mutex (0 free, 1
 * held, 2 held with waiters). */
static volatile int mtx;
static long counter, iters;
static void mlock(volatile int *l) {
	int c = __sync_val_compare_and_swap(l, 0, 1);
	if (c == 0)
		return;
	if (c != 2)
		c = __sync_lock_test_and_set(l, 2);
	while (c != 0) {
		rt_futex(l, FUTEX_WAIT | FUTEX_PRIVATE, 2, 0);
		c = __sync_lock_test_and_set(l, 2);
	}
}
static void munlock(volatile int *l) {
	if (__sync_fetch_and_sub(l, 1) != 1) {
		*l = 0;
		rt_futex(l, FUTEX_WAKE | FUTEX_PRIVATE, 1, 0);
	}
}
static int mutex_fn(void *arg) {
	(void)arg;
	for (long i = 0; i < iters; i++) {
		mlock(&mtx);
		long c = counter;
		if (i % 64 == 0)
			rt_sched_yield();
		counter = c + 1;
		munlock(&mtx);
	}
	return 0;
}
static int t_mutex(long n) {
	for (int i = 0; i < n; i++)
		spawn(&ths[i], RT_THREAD, mutex_fn);
	for (int i = 0; i < n; i++)
		rt_join(&ths[i].ctid);
	line("counter", counter);
	line("expected", n * iters);
	return 0;
}

/* exit: a thread's exit ends it alone; the process goes on. */
static int exit_fn(void *arg) {
	(void)arg;
	rt_exit_thread(3);
}
static int t_exit(void) {
	spawn(&ths[0], RT_THREAD, exit_fn);
	rt_join(&ths[0].ctid);
	puts_("joined a thread that called exit: the process goes on\n");
	return 5;
}

/* group: exit_group in one thread ends every thread, whether it spins in
 * a loop, sleeps in a futex wait or waits for a signal. */
static volatile int never;
static volatile long spins;
static int spin_fn(void *arg) {
	(void)arg;
	for (;;)
		spins++;
}
static int wait_fn(void *arg) {
	(void)arg;
	for (;;)
		rt_futex(&never, FUTEX_WAIT | FUTEX_PRIVATE, 0, 0);
}
static int pause_fn(void *arg) {
	(void)arg;
	for (;;)
		sys3(34, 0, 0, 0); /* pause */
}
static int group_fn(void *arg) {
	(void)arg;
	rt_sleep_ms(50);
	rt_exit(42);
	return 0;
}
static int t_group(void) {
	spawn(&ths[0], RT_THREAD, spin_fn);
	spawn(&ths[1], RT_THREAD, wait_fn);
	spawn(&ths[3], RT_THREAD, pause_fn);
	puts_("spinning, waiting, pausing, and one to exit_group(42)\n");
	spawn(&ths[2], RT_THREAD, group_fn);
	for (;;)
		rt_futex(&never, FUTEX_WAIT | FUTEX_PRIVATE, 0, 0);
}

/* mainexit: the main thread exits (exit, not exit_group) while a thread
 * runs on; the process ends when that one does. */
static volatile int main_exiting;
static int late_fn(void *arg) {
	(void)arg;
	while (!main_exiting)
		rt_futex(&main_exiting, FUTEX_WAIT | FUTEX_PRIVATE, 0, 0);
	rt_sleep_ms(50);
	puts_("the thread runs on after the main thread's exit\n");
	rt_exit_thread(9);
}
static int t_mainexit(void) {
	spawn(&ths[0], RT_THREAD, late_fn);
	puts_("main exits\n");
	main_exiting = 1;
	rt_futex(&main_exiting, FUTEX_WAKE | FUTEX_PRIVATE, 1, 0);
	rt_exit_thread(3);
}

/* tgkill: a signal sent to one thread is handled on that thread, whether
 * it spins in a loop or sleeps in a futex wait (restarted by SA_RESTART);
 * a signal sent to the process is handled by the one thread that does not
 * block it. */
static volatile int stop, who, ready;
static void h_who(int sig, rt_siginfo *si, void *uc) {
	(void)sig, (void)si, (void)uc;
	who = rt_gettid();
}
static int target_fn(void *arg) {
	struct th *t = arg;
	u64 set = SIGBIT(SIGUSR2);
	if (t->idx == 1)
		set = 0;
	rt_sigprocmask(SIG_SETMASK, &set, 0);
	t->tid = rt_gettid();
	__sync_fetch_and_add(&ready, 1);
	switch (t->idx % 3) {
	case 0:
		while (!stop)
			spins++;
		break;
	case 1:
		while (!stop)
			rt_futex(&stop, FUTEX_WAIT | FUTEX_PRIVATE, 0, 0);
		break;
	case 2:
		while (!stop)
			sys3(130, &set, 8, 0); /* rt_sigsuspend with the mask it has */
		break;
	}
	return 0;
}
static const char *const how[] = {" (spinning)", " (futex wait)", " (sigsuspend)"};
static void wait_who(void) {
	for (long i = 0; !who && i < 2000; i++)
		rt_sleep_ms(5);
}
static int t_tgkill(long n) {
	rt_handle(SIGUSR1, h_who, SA_RESTART, 0);
	rt_handle(SIGUSR2, h_who, SA_RESTART, 0);
	u64 set = SIGBIT(SIGUSR2);
	rt_sigprocmask(SIG_SETMASK, &set, 0);
	for (int i = 0; i < n; i++) {
		ths[i].idx = i;
		spawn(&ths[i], RT_THREAD, target_fn);
	}
	while (ready < n)
		rt_sched_yield();
	long pid = rt_getpid();
	for (int i = 0; i < n; i++) {
		who = 0;
		line("tgkill", rt_tgkill(pid, ths[i].ptid, SIGUSR1));
		wait_who();
		puts_("thread ");
		putn(i);
		puts_(how[i % 3]);
		puts_(" handled it on its own thread: ");
		putn(who == ths[i].ptid);
		puts_("\n");
	}
	who = 0;
	line("kill", rt_kill(pid, SIGUSR2));
	wait_who();
	line("the thread that does not block it handled it", who == ths[1].ptid);
	stop = 1;
	rt_futex(&stop, FUTEX_WAKE | FUTEX_PRIVATE, MAXT, 0);
	for (int i = 2; i < n; i += 3)
		rt_tgkill(pid, ths[i].ptid, SIGUSR1);
	for (int i = 0; i < n; i++)
		rt_join(&ths[i].ctid);
	puts_("joined\n");
	return 0;
}

/* segv: a thread's fault goes to the program's handler on that thread,
 * which leaves it by siglongjmp; the thread goes on. */
static rt_jmpbuf segv_jb;
static volatile long segv_on;
static void h_segv(int sig, rt_siginfo *si, void *uc) {
	(void)sig, (void)uc;
	segv_on = rt_gettid();
	rt_siglongjmp(&segv_jb, si->u.addr == (void *)8 ? 1 : 2);
}
static int segv_fn(void *arg) {
	struct th *t = arg;
	t->tid = rt_gettid();
	int r = rt_sigsetjmp(&segv_jb);
	if (r == 0)
		rt_store((void *)8, 1);
	t->result = r;
	return 0;
}
static int t_segv(void) {
	rt_handle(SIGSEGV, h_segv, 0, 0);
	spawn(&ths[0], RT_THREAD, segv_fn);
	rt_join(&ths[0].ctid);
	line("the fault's handler ran on the faulting thread", segv_on == ths[0].tid);
	line("the thread went on past it", ths[0].result == 1);
	return 0;
}

/* fault: a thread's fatal fault kills the whole process. */
static volatile int go_fault;
static int fault_fn(void *arg) {
	(void)arg;
	while (!go_fault)
		rt_futex(&go_fault, FUTEX_WAIT | FUTEX_PRIVATE, 0, 0);
	rt_store(0, 1);
	return 0;
}
static int t_fault(void) {
	rt_nocore();
	spawn(&ths[0], RT_THREAD, spin_fn);
	spawn(&ths[1], RT_THREAD, fault_fn);
	puts_("a thread will fault\n");
	go_fault = 1;
	rt_futex(&go_fault, FUTEX_WAKE | FUTEX_PRIVATE, 1, 0);
	for (;;)
		rt_futex(&never, FUTEX_WAIT | FUTEX_PRIVATE, 0, 0);
}

/* smc: code one thread runs is changed by another: written over (the
 * page reachvm write-protected for the running thread's translation is
 * written by a thread whose machine never translated it), replaced by a
 * mapping (mmap MAP_FIXED of a file holding the new code), or written by
 * two threads at once while a third runs it. The thread running it must
 * see the new code. */
static unsigned char *code;
static volatile long calls;
static volatile int want, seen, writers_stop;
static void put_ret(unsigned char *p, int v) {
	/* mov eax, v; ret */
	p[1] = v, p[2] = 0, p[3] = 0, p[4] = 0, p[5] = 0xc3;
	__sync_synchronize();
	p[0] = 0xb8;
}
static int runner_fn(void *arg) {
	(void)arg;
	int (*f)(void) = (int (*)(void))code;
	for (long i = 0; i < 2000000000L; i++) {
		int v = f();
		calls++;
		if (v == want) {
			seen = 1;
			return 0;
		}
	}
	return 0;
}
static int writer_fn(void *arg) {
	struct th *t = arg;
	while (!writers_stop) {
		code[1] = 2 + t->idx;
		rt_sched_yield();
	}
	return 0;
}
static void wait_calls(long n) {
	while (calls < n)
		rt_sched_yield();
}
static int t_smc(const char *how) {
	code = rt_mmap(0, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	put_ret(code, 1);
	want = 7;
	spawn(&ths[0], RT_THREAD, runner_fn);
	wait_calls(1000);
	if (streq(how, "write")) {
		code[1] = 7;
	} else if (streq(how, "remap")) {
		int fd = rt_memfd("code");
		unsigned char page[4096] = {0};
		put_ret(page, 7);
		rt_write(fd, page, sizeof page);
		void *p = rt_mmap(code, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_FIXED, fd, 0);
		line("remapped in place", p == code);
	} else if (streq(how, "race")) {
		for (int i = 1; i <= 2; i++) {
			ths[i].idx = i;
			spawn(&ths[i], RT_THREAD, writer_fn);
		}
		long c = calls;
		wait_calls(c + 1000);
		writers_stop = 1;
		rt_join(&ths[1].ctid);
		rt_join(&ths[2].ctid);
		code[1] = 7;
	} else {
		return 2;
	}
	rt_join(&ths[0].ctid);
	line("the running thread saw the new code", seen);
	rt_munmap(code, 4096);
	return 0;
}

/* spawn: n threads made and joined one after the other (workloop, mode
 * 2), on a stack of their own, so that a native call maps nothing. */
static char spawn_stack[64 << 10] __attribute__((aligned(16)));
static int nothing_fn(void *arg) {
	(void)arg;
	return 0;
}
long workloop(long n, long mode);
static int t_spawn(long n) {
	long r = workloop(n, 2);
	if (r != n) {
		say("clone failed: ", r);
		return 1;
	}
	line("spawned", n);
	return 0;
}

/* work: 64 small functions called through a table, each with a loop and
 * branches of its own: code for a thread to translate. workloop runs it
 * n times: in the calling thread (mode 0), each time in a new thread made
 * and joined (mode 1), or makes and joins n threads that do nothing (mode
 * 2). Mode 1 less modes 0 and 2 is what a new thread pays to translate
 * code the program already ran. */
#define W1(i) \
	__attribute__((noinline)) static long w##i(long x) { \
		long s = x; \
		for (int k = 0; k < 4; k++) \
			s = (s & 1) ? s * 3 + i : s / 2 + k; \
		return s ^ i; \
	}
#define W8(a) W1(a##0) W1(a##1) W1(a##2) W1(a##3) W1(a##4) W1(a##5) W1(a##6) W1(a##7)
W8(1) W8(2) W8(3) W8(4) W8(5) W8(6) W8(7) W8(8)
#define R8(a) w##a##0, w##a##1, w##a##2, w##a##3, w##a##4, w##a##5, w##a##6, w##a##7
static long (*const wtab[64])(long) = {R8(1), R8(2), R8(3), R8(4), R8(5), R8(6), R8(7), R8(8)};
static volatile long wsink;
static int work_fn(void *arg) {
	(void)arg;
	long s = 0;
	for (int i = 0; i < 64; i++)
		s += wtab[i](s + i);
	wsink = s;
	return 0;
}
__attribute__((noinline, used)) long workloop(long n, long mode) {
	static int ptid;
	static volatile int ctid;
	for (long i = 0; i < n; i++) {
		if (mode == 0) {
			work_fn(0);
			continue;
		}
		ctid = -1;
		long r = rt_clone(RT_THREAD, spawn_stack + sizeof spawn_stack, &ptid, (int *)&ctid, 0, mode == 1 ? work_fn : nothing_fn, 0);
		if (r <= 0)
			return r;
		rt_join(&ctid);
	}
	return n;
}

/* hold: n threads that wait until the main thread, after ms
 * milliseconds, lets them end: for measuring what a live thread costs. */
static volatile int hold_go;
static int hold_fn(void *arg) {
	(void)arg;
	while (!hold_go)
		rt_futex(&hold_go, FUTEX_WAIT | FUTEX_PRIVATE, 0, 0);
	return 0;
}
static int t_hold(long n, long ms) {
	/* A benchmark runs the loaded program again: its data too. */
	hold_go = 0;
	for (int i = 0; i < n; i++)
		spawn(&ths[i], RT_THREAD, hold_fn);
	rt_sleep_ms(ms);
	hold_go = 1;
	rt_futex(&hold_go, FUTEX_WAKE | FUTEX_PRIVATE, MAXT, 0);
	for (int i = 0; i < n; i++)
		rt_join(&ths[i].ctid);
	return 0;
}

int main(int argc, char **argv, char **envp) {
	(void)envp;
	if (argc < 2)
		return 2;
	const char *c = argv[1];
	if (streq(c, "create"))
		return t_create(nthreads(argc, argv, 2, 4), 0, create_fn);
	if (streq(c, "tls")) {
		int r = t_create(nthreads(argc, argv, 2, 4), CLONE_SETTLS, tls_fn);
		return r;
	}
	if (streq(c, "mutex")) {
		iters = argc > 3 ? atol_(argv[3]) : 10000;
		return t_mutex(nthreads(argc, argv, 2, 4));
	}
	if (streq(c, "exit"))
		return t_exit();
	if (streq(c, "group"))
		return t_group();
	if (streq(c, "mainexit"))
		return t_mainexit();
	if (streq(c, "tgkill"))
		return t_tgkill(nthreads(argc, argv, 2, 4));
	if (streq(c, "fault"))
		return t_fault();
	if (streq(c, "segv"))
		return t_segv();
	if (streq(c, "smc") && argc > 2)
		return t_smc(argv[2]);
	if (streq(c, "spawn"))
		return t_spawn(argc > 2 ? atol_(argv[2]) : 100);
	if (streq(c, "work") && argc > 3)
		return workloop(atol_(argv[2]), atol_(argv[3])) == atol_(argv[2]) ? 0 : 1;
	if (streq(c, "hold") && argc > 3)
		return t_hold(atol_(argv[2]) < MAXT ? atol_(argv[2]) : MAXT, atol_(argv[3]));
	return 2;
}

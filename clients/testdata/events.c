/* events: a native client for TestNativeEvents, freestanding. It counts
 * thread starts and exits (with the tids and a per-thread data slot
 * that must come back), system calls before and after, and makes getpid
 * return 4242 without making it (syscall_pre's skip) and getppid's
 * result 4343 (syscall_post). Its arguments choose misbehaviour for the
 * error tests:
 *
 *   refuse      init returns 7
 *   bad-event   the block event points outside the image
 *   bad-cell    an add to a cell outside the image
 *   bad-kind    an insertion of kind 9
 *   full        more insertions than the block has room for
 *   big         the report is 300000 bytes (through a pipe)
 *   signals     getpid and getppid are left alone (raise needs getpid)
 *   suppress    the same, and SIGUSR1 is suppressed
 *
 * It also counts module loads and unloads, noting the C library and
 * the dynamic linker among them, and the signals, noting SIGUSR1's.
 */
#include "reachvm.h"

static uint64_t starts, exits, pre, post, skipped, data_ok, data_bad, blocks;
static int mode;
static uint64_t mods, unmods, saw_libc, saw_ld, bad_mods, signals, usr1, usr1_bad;
static uint64_t cell;

static int streq(const char *a, const char *b)
{
	while (*a != '\0' && *a == *b)
		a++, b++;
	return *a == *b;
}

static void thread_start(struct rv_thread *t)
{
	__atomic_fetch_add(&starts, 1, __ATOMIC_RELAXED);
	if (t->data != NULL)
		__atomic_fetch_add(&data_bad, 1, __ATOMIC_RELAXED);
	/* The data slot holds the tid's complement, checked at exit. */
	t->data = (void *)(uintptr_t)~(uint64_t)t->tid;
}

static void thread_exit(struct rv_thread *t)
{
	__atomic_fetch_add(&exits, 1, __ATOMIC_RELAXED);
	if (t->data == (void *)(uintptr_t)~(uint64_t)t->tid)
		__atomic_fetch_add(&data_ok, 1, __ATOMIC_RELAXED);
	else
		__atomic_fetch_add(&data_bad, 1, __ATOMIC_RELAXED);
}

static void syscall_pre(struct rv_syscall *s)
{
	__atomic_fetch_add(&pre, 1, __ATOMIC_RELAXED);
	if (s->nr == 39 /* getpid */ && mode < 6) {
		s->skip = 1;
		s->result = 4242;
		__atomic_fetch_add(&skipped, 1, __ATOMIC_RELAXED);
	}
}

static void syscall_post(struct rv_syscall *s)
{
	__atomic_fetch_add(&post, 1, __ATOMIC_RELAXED);
	if (s->nr == 110 /* getppid */ && mode < 6)
		s->result = 4343;
}

static int contains(const char *s, const char *sub)
{
	for (; *s != '\0'; s++) {
		const char *a = s, *b = sub;
		while (*b != '\0' && *a == *b)
			a++, b++;
		if (*b == '\0')
			return 1;
	}
	return 0;
}

static void module_load(const struct rv_module *m)
{
	mods++; /* one at a time: no atomics */
	if (m->path == NULL || m->base == 0 || m->end <= m->base)
		bad_mods++;
	else if (contains(m->path, "/libc.so"))
		saw_libc++;
	else if (contains(m->path, "/ld-linux"))
		saw_ld++;
}

static void module_unload(const struct rv_module *m)
{
	(void)m;
	unmods++;
}

static void signal(struct rv_signal *s)
{
	__atomic_fetch_add(&signals, 1, __ATOMIC_RELAXED);
	if (s->signo != 10 /* SIGUSR1 */)
		return;
	__atomic_fetch_add(&usr1, 1, __ATOMIC_RELAXED);
	/* si_signo is the siginfo's first word; a raise() is SI_TKILL
	 * (-6), not a fault. */
	if (s->siginfo[0] != 10 || s->code != -6 || s->fault != 0 || s->pc == 0 || s->thread == NULL)
		__atomic_fetch_add(&usr1_bad, 1, __ATOMIC_RELAXED);
	if (mode == 6)
		s->suppress = 1;
}

static void block(struct rv_block *b)
{
	int i;

	__atomic_fetch_add(&blocks, 1, __ATOMIC_RELAXED);
	switch (mode) {
	case 2: /* bad-cell */
		b->inserts[0].kind = RV_INSERT_ADD;
		b->inserts[0].at = 0;
		b->inserts[0].target = 0x1000;
		b->inserts[0].n = 1;
		b->ninserts = 1;
		break;
	case 3: /* bad-kind */
		b->inserts[0].kind = 9;
		b->inserts[0].at = 0;
		b->ninserts = 1;
		break;
	case 4: /* full */
		for (i = 0; i <= (int)b->inserts_cap; i++)
			rv_insert_add(b, 0, &cell, 1, 0);
		break;
	}
}

static void report(const struct rv_exit *e)
{
	rv_dprintf(e->fd, "{\"starts\":%llu,\"exits\":%llu,\"data_ok\":%llu,\"data_bad\":%llu,\"pre\":%llu,\"post\":%llu,\"skipped\":%llu,\"blocks_seen\":%d,\"status\":%d,\"error\":\"%s\","
		   "\"modules\":%llu,\"unloads\":%llu,\"libc\":%llu,\"ld\":%llu,\"bad_modules\":%llu,\"signals\":%llu,\"usr1\":%llu,\"usr1_bad\":%llu}\n",
		   (unsigned long long)starts, (unsigned long long)exits, (unsigned long long)data_ok,
		   (unsigned long long)data_bad, (unsigned long long)pre, (unsigned long long)post,
		   (unsigned long long)skipped, blocks > 0, e->status, e->error != NULL ? e->error : "",
		   (unsigned long long)mods, (unsigned long long)unmods, (unsigned long long)saw_libc,
		   (unsigned long long)saw_ld, (unsigned long long)bad_mods, (unsigned long long)signals,
		   (unsigned long long)usr1, (unsigned long long)usr1_bad);
	if (mode == 5) {
		static char line[1000];
		int i;
		for (i = 0; i < (int)sizeof line - 1; i++)
			line[i] = 'x';
		line[sizeof line - 1] = '\n';
		for (i = 0; i < 300; i++)
			rv_write(e->fd, line, sizeof line);
	}
}

int reachvm_client_init(struct rv_client *c, int argc, const char **argv)
{
	if (c->version != RV_API_VERSION || c->size != sizeof *c)
		return 9;
	if (argc > 1) {
		if (streq(argv[1], "refuse"))
			return 7;
		if (streq(argv[1], "bad-event"))
			mode = 1;
		else if (streq(argv[1], "bad-cell"))
			mode = 2;
		else if (streq(argv[1], "bad-kind"))
			mode = 3;
		else if (streq(argv[1], "full"))
			mode = 4;
		else if (streq(argv[1], "big"))
			mode = 5;
		else if (streq(argv[1], "suppress"))
			mode = 6;
		else if (streq(argv[1], "signals"))
			mode = 7;
		else
			return 8;
	}
	c->name = "events";
	c->thread_start = thread_start;
	c->thread_exit = thread_exit;
	c->syscall_pre = syscall_pre;
	c->syscall_post = syscall_post;
	c->block = mode == 1 ? (void (*)(struct rv_block *))(uintptr_t)0x1000 : block;
	c->exit = report;
	c->module_load = module_load;
	c->module_unload = module_unload;
	c->signal = signal;
	return 0;
}

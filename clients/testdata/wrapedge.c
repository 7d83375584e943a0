/* wrapedge wraps wrapme's functions (jit/kernels/c/libc/wrapme.c) and
 * checks the module and wrap helpers at their edges (TestNativeWrapEdges):
 * NULL pointers, unknown names, addresses no function holds, argument
 * indexes out of range, each helper in the hook it is not for. add's
 * pre hook makes add(100, 200)'s first argument 1000 and its post hook
 * the result 1234; twice's post hook sees add's result through the tail
 * call, with its pre hook's data, and makes it 4242; jumper's post hook
 * is told the call was unwound (a longjmp); skipme is skipped, returning
 * 77. The report counts what was seen, and each check that failed, by
 * line.
 *
 * With an argument, a wrap the run must refuse: bad-func (a wrap of 0),
 * no-hooks, full (past the table's room), bad-hook (a pre hook outside
 * the image, written into the table by hand), bad-n (a count past the
 * table's room). */
#include "reachvm.h"

static const char *mode = "";
static const struct rv_module *main_mod;
static uint64_t add_fn, twice_fn, jumper_fn, skipme_fn;
static uint64_t ok, bad, bad_line, add_pre, add_post, twice_post, unwound, skip_pre, jumper_post, same_module, blocks_wrap;

#define CHECK(c)                                                               \
	do {                                                                   \
		if (c)                                                         \
			__atomic_fetch_add(&ok, 1, __ATOMIC_RELAXED);          \
		else {                                                         \
			__atomic_fetch_add(&bad, 1, __ATOMIC_RELAXED);         \
			bad_line = __LINE__;                                   \
		}                                                              \
	} while (0)

static int is(const char *a, const char *b)
{
	return rv_strcmp(a, b) == 0;
}

/* checks are the helpers' answers any hook must give. */
static void checks(struct rv_wrapcall *w)
{
	uint64_t v = 7;

	CHECK(rv_wrap_arg(w, 6, &v) == RV_ERR_INDEX && v == 7);
	CHECK(rv_wrap_arg(w, -1, &v) == RV_ERR_INDEX);
	CHECK(rv_wrap_arg(NULL, 0, &v) == RV_ERR_NULL);
	CHECK(rv_wrap_arg(w, 0, NULL) == RV_ERR_NULL);
	CHECK(rv_wrap_set_arg(w, 6, 0) == RV_ERR_INDEX);
	CHECK(rv_wrap_set_arg(NULL, 0, 0) == RV_ERR_NULL);
	CHECK(rv_wrap_retval(NULL, &v) == RV_ERR_NULL);
	CHECK(rv_wrap_set_retval(NULL, 0) == RV_ERR_NULL);
	CHECK(rv_wrap_skip(NULL, 0) == RV_ERR_NULL);
	CHECK(w->thread != NULL && w->thread->tid > 0 && w->retaddr != 0);
}

/* pre_checks are those of a pre hook. */
static void pre_checks(struct rv_wrapcall *w)
{
	uint64_t v;

	checks(w);
	CHECK(w->post == 0 && w->data == NULL && w->unwound == 0);
	CHECK(rv_wrap_retval(w, &v) == RV_ERR_EVENT);
	CHECK(rv_wrap_set_retval(w, 1) == RV_ERR_EVENT);
}

/* post_checks are those of a post hook. */
static void post_checks(struct rv_wrapcall *w)
{
	checks(w);
	CHECK(w->post == 1);
	CHECK(rv_wrap_set_arg(w, 0, 1) == RV_ERR_EVENT);
	CHECK(rv_wrap_skip(w, 1) == RV_ERR_EVENT && w->skip == 0);
}

static void add_before(struct rv_wrapcall *w)
{
	uint64_t a = 0, b = 0;

	pre_checks(w);
	CHECK(w->func == add_fn);
	add_pre++;
	CHECK(rv_wrap_arg(w, 0, &a) == RV_OK && rv_wrap_arg(w, 1, &b) == RV_OK);
	if (a == 100 && b == 200)
		CHECK(rv_wrap_set_arg(w, 0, 1000) == RV_OK);
}

static void add_after(struct rv_wrapcall *w)
{
	uint64_t r = 0;

	post_checks(w);
	add_post++;
	CHECK(w->unwound == 0 && rv_wrap_retval(w, &r) == RV_OK);
	/* The post hook has the arguments the function got: the pre
	 * hook's change. */
	CHECK(r == w->args[0] + w->args[1]);
	if (w->args[0] == 1000)
		CHECK(rv_wrap_set_retval(w, 1234) == RV_OK);
}

static void twice_before(struct rv_wrapcall *w)
{
	pre_checks(w);
	w->data = (void *)0x2a2a;
}

static void twice_after(struct rv_wrapcall *w)
{
	uint64_t r = 0;

	post_checks(w);
	twice_post++;
	CHECK(w->data == (void *)0x2a2a && w->args[0] == 21);
	CHECK(rv_wrap_retval(w, &r) == RV_OK && r == 42);
	CHECK(rv_wrap_set_retval(w, 4242) == RV_OK);
}

static void jumper_after(struct rv_wrapcall *w)
{
	uint64_t r = 5;

	post_checks(w);
	jumper_post++;
	if (w->unwound) {
		unwound++;
		CHECK(rv_wrap_retval(w, &r) == RV_ERR_EVENT && r == 5);
		CHECK(rv_wrap_set_retval(w, 1) == RV_ERR_EVENT);
	}
}

static void skipme_before(struct rv_wrapcall *w)
{
	pre_checks(w);
	skip_pre++;
	CHECK(rv_wrap_skip(w, 77) == RV_OK && w->skip == 1);
}

static void skipme_after(struct rv_wrapcall *w)
{
	(void)w;
	CHECK(0); /* a skipped call has no post hook */
}

static void module_load(const struct rv_module *m)
{
	const char *base = m->path, *p;
	const struct rv_symbol *s = (const struct rv_symbol *)1;
	uint64_t a = 1;
	uint32_t i;

	/* Every module: the helpers' refusals, and every function found by
	 * its start and by its name. */
	CHECK(rv_module_lookup(NULL, "add", &a) == RV_ERR_NULL);
	CHECK(rv_module_lookup(m, NULL, &a) == RV_ERR_NULL);
	CHECK(rv_module_lookup(m, "add", NULL) == RV_ERR_NULL);
	CHECK(rv_module_lookup(m, "no such function, surely", &a) == RV_ERR_NOT_FOUND && a == 0);
	CHECK(rv_module_lookup(m, "", &a) == RV_ERR_NOT_FOUND);
	CHECK(rv_module_symbol(NULL, 0, &s) == RV_ERR_NULL);
	CHECK(rv_module_symbol(m, 0, NULL) == RV_ERR_NULL);
	CHECK(rv_module_symbol(m, 0, &s) == RV_ERR_NOT_FOUND && s == NULL);
	CHECK(rv_wrap(NULL, 1, add_before, NULL) == RV_ERR_NULL);
	CHECK(m->wraps != NULL && m->wraps->n == 0 && m->wraps->cap >= m->nsyms + 64);
	for (i = 0; i < m->nsyms; i++) {
		const struct rv_symbol *f = &m->syms[i];
		CHECK(f->end > f->start && (i == 0 || f[-1].start < f->start));
		CHECK(rv_module_symbol(m, f->start, &s) == RV_OK && s == f);
		CHECK(rv_module_symbol(m, f->end - 1, &s) == RV_OK && s == f);
	}
	for (i = 0; i < m->nnames; i++) {
		CHECK(i == 0 || rv_strcmp(m->names[i - 1].name, m->names[i].name) < 0);
		CHECK(rv_module_lookup(m, m->names[i].name, &a) == RV_OK && a == m->names[i].start);
	}

	for (p = m->path; *p != '\0'; p++)
		if (*p == '/')
			base = p + 1;
	for (p = "wrapme"; *p != '\0'; p++, base++)
		if (*base != *p)
			return;
	main_mod = m;
	CHECK(rv_module_lookup(m, "add", &add_fn) == RV_OK && rv_module_lookup(m, "twice", &twice_fn) == RV_OK &&
	      rv_module_lookup(m, "jumper", &jumper_fn) == RV_OK && rv_module_lookup(m, "skipme", &skipme_fn) == RV_OK);
	CHECK(rv_module_symbol(m, add_fn + 1, &s) == RV_OK && s->start == add_fn && is(s->name, "add"));
	if (is(mode, "bad-func")) {
		CHECK(rv_wrap(m, 0, add_before, NULL) == RV_ERR_NULL);
		return;
	}
	if (is(mode, "no-hooks")) {
		CHECK(rv_wrap(m, add_fn, NULL, NULL) == RV_ERR_ARGS);
		CHECK(rv_wrap(m, add_fn, add_before, NULL) == RV_ERR_ARGS); /* refused after an error */
		return;
	}
	if (is(mode, "full")) {
		while (rv_wrap(m, add_fn, add_before, NULL) == RV_OK)
			;
		CHECK(m->wraps->error == RV_ERR_FULL && m->wraps->n == m->wraps->cap);
		return;
	}
	if (is(mode, "bad-hook")) {
		m->wraps->wraps[0].func = add_fn;
		m->wraps->wraps[0].pre = (void (*)(struct rv_wrapcall *))0x1000;
		m->wraps->n = 1;
		return;
	}
	if (is(mode, "bad-n")) {
		m->wraps->n = m->wraps->cap + 1;
		return;
	}
	CHECK(rv_wrap(m, add_fn, add_before, add_after) == RV_OK);
	CHECK(rv_wrap(m, twice_fn, twice_before, twice_after) == RV_OK);
	CHECK(rv_wrap(m, jumper_fn, NULL, jumper_after) == RV_OK);
	CHECK(rv_wrap(m, skipme_fn, skipme_before, skipme_after) == RV_OK);
}

static void module_unload(const struct rv_module *m)
{
	CHECK(m->wraps == NULL && rv_wrap(m, 1, add_before, NULL) == RV_ERR_EVENT);
}

static void block(struct rv_block *b)
{
	if (b->module == NULL || b->module != main_mod)
		return;
	same_module++;
	/* The block's module is not module_load's: no wraps there. */
	if (rv_wrap(b->module, b->pc, add_before, NULL) == RV_ERR_EVENT)
		blocks_wrap++;
}

static void report(const struct rv_exit *e)
{
	rv_dprintf(e->fd,
		   "{\"ok\":%llu,\"bad\":%llu,\"bad_line\":%llu,\"add_pre\":%llu,\"add_post\":%llu,\"twice_post\":%llu,"
		   "\"jumper_post\":%llu,\"unwound\":%llu,\"skip_pre\":%llu,\"same_module\":%llu,\"blocks_wrap\":%llu}\n",
		   (unsigned long long)ok, (unsigned long long)bad, (unsigned long long)bad_line,
		   (unsigned long long)add_pre, (unsigned long long)add_post, (unsigned long long)twice_post,
		   (unsigned long long)jumper_post, (unsigned long long)unwound, (unsigned long long)skip_pre,
		   (unsigned long long)same_module, (unsigned long long)blocks_wrap);
}

int reachvm_client_init(struct rv_client *c, int argc, const char **argv)
{
	if (argc > 1)
		mode = argv[1];
	c->name = "wrapedge";
	c->module_load = module_load;
	c->module_unload = module_unload;
	c->block = block;
	c->exit = report;
	return 0;
}

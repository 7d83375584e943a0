/*
 * calltrace records, per thread and in order, each entry to a function
 * the modules' symbol tables name and each return out of one: a trace
 * record (rv_insert_record_addr) at the first instruction of a block
 * that starts a named function, and at each ret of one. A record's tag
 * is a site's number; the site, numbered once at translation, has the
 * function's name, found in the block's module (rv_block.module,
 * rv_module_symbol). Its report is that of reachvm's Go sample client of
 * the same name: the calls and returns by function, the busiest twenty,
 * and the first 200 events of the first thread, indented by call depth.
 *
 *     gcc -O2 -fPIC -shared -nostdlib -ffreestanding -fno-stack-protector \
 *         -mgeneral-regs-only -I include -o calltrace.so examples/calltrace.c
 *     reachvm run -c ./calltrace.so -- ls
 *
 * A client gets rv_block.module only if it takes a module event: this
 * one has an empty module_load for that.
 */
#include "reachvm.h"

#define TOP 20
#define HEAD 200

/* lock guards everything below: the block events of all threads and
 * their trace events share the tables. */
static int lock;

/* alloc returns n bytes of zeroed memory, never freed: the sites' names
 * outlive their modules (whose symbols go at module_unload), and the
 * tables only grow. NULL if mmap fails. */
static void *alloc(uint64_t n)
{
	static char *next, *end;
	void *p;

	n = (n + 15) & ~15ull;
	if (next == NULL || (uint64_t)(end - next) < n) {
		uint64_t size = n > (1u << 20) ? n : (1u << 20);
		long r = rv_syscall6(9 /* mmap */, 0, (long)size, 3 /* PROT_READ|PROT_WRITE */,
				     0x22 /* MAP_PRIVATE|MAP_ANONYMOUS */, -1, 0);
		if (r < 0 && r > -4096)
			return NULL;
		next = (char *)r;
		end = next + size;
	}
	p = next;
	next += n;
	return p;
}

/* copy copies n bytes: no C library's memcpy in a freestanding client
 * (and the attribute keeps gcc from making the loop a call of it). */
__attribute__((optimize("no-tree-loop-distribute-patterns"))) static void copy(void *dst, const void *src, uint64_t n)
{
	char *d = dst;
	const char *s = src;

	while (n-- > 0)
		*d++ = *s++;
}

/* grow makes room for need elements of size in *arr (holding *cap),
 * doubling; 0 on success. */
static int grow(void **arr, uint32_t *cap, uint64_t size, uint32_t need)
{
	uint32_t c = *cap ? *cap : 64;
	char *p;

	if (need <= *cap)
		return 0;
	while (c < need)
		c *= 2;
	p = alloc(c * size);
	if (p == NULL)
		return -1;
	if (*arr != NULL)
		copy(p, *arr, *cap * size);
	*arr = p;
	*cap = c;
	return 0;
}

/* A function, by its report name ("name@file"), with its counts. */
struct func {
	const char *name;
	uint64_t calls, returns;
};

static struct func *funcs;
static uint32_t nfuncs, funcs_cap;

/* A site: a record's place, an entry to or a return out of func. */
struct site {
	uint32_t func;
	uint32_t ret;
};

static struct site *sites;
static uint32_t nsites, sites_cap;

/* Hash tables of indexes + 1 (0: free): funcs by name, sites by pc and
 * kind. Open addressing; each is kept at most half full. */
static uint32_t *func_index, *site_index;
static uint32_t func_index_cap, site_index_cap;
static uint64_t *site_pcs; /* sites' pcs, by site, for rehashing */
static uint32_t site_pcs_cap;

static uint64_t hash_str(const char *s)
{
	uint64_t h = 14695981039346656037ull;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static uint64_t hash_site(uint64_t pc, uint32_t ret)
{
	return (pc * 2 + ret) * 0x9e3779b97f4a7c15ull;
}

/* rehash makes *index a table of cap slots of the n entries, key(i)
 * their hashes. */
static int rehash(uint32_t **index, uint32_t *icap, uint32_t n, uint64_t (*key)(uint32_t))
{
	uint32_t cap = *icap ? *icap : 1024, i;
	uint32_t *t;

	while (cap < 2 * (n + 1))
		cap *= 2;
	if (cap == *icap)
		return 0;
	t = alloc((uint64_t)cap * sizeof *t);
	if (t == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		uint32_t j = (uint32_t)(key(i) >> 32) & (cap - 1);
		while (t[j] != 0)
			j = (j + 1) & (cap - 1);
		t[j] = i + 1;
	}
	*index = t;
	*icap = cap;
	return 0;
}

static uint64_t func_key(uint32_t i) { return hash_str(funcs[i].name); }
static uint64_t site_key(uint32_t i) { return hash_site(site_pcs[i], sites[i].ret); }

/* func_of returns the index of the function name@file, made if new; -1
 * if memory ran out. Preconditions: lock is held. */
static int64_t func_of(const char *name, const char *file)
{
	uint64_t h;
	uint32_t j, n1 = 0, n2 = 0;
	char *s;

	while (name[n1] != '\0')
		n1++;
	while (file[n2] != '\0')
		n2++;
	/* The name made once, then looked up (a site is new, so rarely
	 * its function). */
	s = alloc(n1 + 1 + n2 + 1);
	if (s == NULL)
		return -1;
	copy(s, name, n1);
	s[n1] = '@';
	copy(s + n1 + 1, file, n2 + 1);
	if (rehash(&func_index, &func_index_cap, nfuncs, func_key) != 0)
		return -1;
	h = hash_str(s);
	for (j = (uint32_t)(h >> 32) & (func_index_cap - 1); func_index[j] != 0; j = (j + 1) & (func_index_cap - 1))
		if (rv_strcmp(funcs[func_index[j] - 1].name, s) == 0)
			return func_index[j] - 1;
	if (grow((void **)&funcs, &funcs_cap, sizeof *funcs, nfuncs + 1) != 0)
		return -1;
	funcs[nfuncs].name = s;
	func_index[j] = ++nfuncs;
	return nfuncs - 1;
}

/* lost counts the sites not recorded for want of memory. */
static uint64_t lost;

/* site returns the tag of the record at pc, an entry or a return of
 * the function sym of module m; -1 if memory ran out. */
static int64_t site(uint64_t pc, uint32_t ret, const struct rv_symbol *sym, const struct rv_module *m)
{
	const char *file = m->path, *p;
	uint32_t j;
	int64_t f, id = -1;

	for (p = m->path; *p != '\0'; p++)
		if (*p == '/')
			file = p + 1;
	rv_lock(&lock);
	if (rehash(&site_index, &site_index_cap, nsites, site_key) != 0)
		goto out;
	for (j = (uint32_t)(hash_site(pc, ret) >> 32) & (site_index_cap - 1); site_index[j] != 0;
	     j = (j + 1) & (site_index_cap - 1)) {
		uint32_t k = site_index[j] - 1;
		if (site_pcs[k] == pc && sites[k].ret == ret) {
			id = k;
			goto out;
		}
	}
	f = func_of(sym->name, file);
	if (f < 0 || grow((void **)&sites, &sites_cap, sizeof *sites, nsites + 1) != 0 ||
	    grow((void **)&site_pcs, &site_pcs_cap, sizeof *site_pcs, nsites + 1) != 0)
		goto out;
	sites[nsites].func = (uint32_t)f;
	sites[nsites].ret = ret;
	site_pcs[nsites] = pc;
	id = nsites;
	site_index[j] = ++nsites;
out:
	if (id < 0)
		lost++;
	rv_unlock(&lock);
	return id;
}

/* is_ret reports whether the instruction is a near return (c3, c2 iw,
 * with a rep or bnd prefix). */
static int is_ret(const struct rv_instr *in)
{
	const uint8_t *c = in->bytes;
	uint32_t n = in->len;

	while (n > 1 && (c[0] == 0xf3 || c[0] == 0xf2))
		c++, n--;
	return n > 0 && (c[0] == 0xc3 || c[0] == 0xc2);
}

static void block(struct rv_block *b)
{
	const struct rv_module *m = b->module;
	const struct rv_symbol *sym;
	const struct rv_instr *last = &b->instrs[b->n - 1];
	int64_t id;

	if (m == NULL)
		return;
	if (rv_module_symbol(m, b->pc, &sym) == RV_OK && sym->start == b->pc &&
	    (id = site(b->pc, 0, sym, m)) >= 0)
		rv_insert_record_addr(b, 0, RV_RSP, 0, (uint32_t)id);
	/* A return out of a named function: the code of a stripped
	 * library's own functions has none. */
	if (is_ret(last) && rv_module_symbol(m, last->pc, &sym) == RV_OK && (id = site(last->pc, 1, sym, m)) >= 0)
		rv_insert_record_addr(b, b->n - 1, RV_RSP, 0, (uint32_t)id);
}

/* The head of the trace: the first thread's first HEAD events, each a
 * function and its depth. */
struct event {
	uint32_t func;
	uint32_t ret;
	uint64_t depth;
};

static struct event head[HEAD];
static uint32_t nhead;
static int32_t head_tid;
static uint64_t depth;

/* tids are the threads that recorded (a set, open addressing). */
static int32_t *tids;
static uint32_t ntids, tids_cap;

static void saw_thread(int32_t tid)
{
	uint32_t j;

	/* tid 0 is no thread's: a free slot. */
	if (tids_cap < 2 * (ntids + 1)) {
		uint32_t cap = tids_cap ? 2 * tids_cap : 64, i;
		int32_t *t = alloc(cap * sizeof *t);
		if (t == NULL)
			return;
		for (i = 0; i < tids_cap; i++) {
			if (tids[i] == 0)
				continue;
			for (j = (uint32_t)tids[i] & (cap - 1); t[j] != 0; j = (j + 1) & (cap - 1))
				;
			t[j] = tids[i];
		}
		tids = t;
		tids_cap = cap;
	}
	for (j = (uint32_t)tid & (tids_cap - 1); tids[j] != 0; j = (j + 1) & (tids_cap - 1))
		if (tids[j] == tid)
			return;
	tids[j] = tid;
	ntids++;
}

static void trace(struct rv_thread *t, const struct rv_trace_record *recs, size_t n)
{
	size_t i;

	rv_lock(&lock);
	saw_thread(t->tid);
	if (head_tid == 0)
		head_tid = t->tid;
	for (i = 0; i < n; i++) {
		const struct site *s = &sites[recs[i].tag];
		struct func *f = &funcs[s->func];
		if (s->ret)
			f->returns++;
		else
			f->calls++;
		if (t->tid != head_tid || nhead >= HEAD)
			continue;
		if (s->ret) {
			if (depth > 0)
				depth--;
			head[nhead++] = (struct event){s->func, 1, depth};
		} else {
			head[nhead++] = (struct event){s->func, 0, depth};
			depth++;
		}
	}
	rv_unlock(&lock);
}

/* module_load takes nothing: having it makes rv_block.module known. */
static void module_load(const struct rv_module *m)
{
	(void)m;
}

/* json_string writes s as a JSON string as Go's encoding/json does:
 * quotes, backslashes and control characters escaped, and <, > and &
 * (and U+2028, U+2029) as \u escapes. */
static void json_string(int fd, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	rv_dprintf(fd, "\"");
	for (; *p != '\0'; p++) {
		switch (*p) {
		case '"':
			rv_dprintf(fd, "\\\"");
			break;
		case '\\':
			rv_dprintf(fd, "\\\\");
			break;
		case '\n':
			rv_dprintf(fd, "\\n");
			break;
		case '\r':
			rv_dprintf(fd, "\\r");
			break;
		case '\t':
			rv_dprintf(fd, "\\t");
			break;
		case '\b':
			rv_dprintf(fd, "\\b");
			break;
		case '\f':
			rv_dprintf(fd, "\\f");
			break;
		case '<':
		case '>':
		case '&':
			rv_dprintf(fd, "\\u00%c%c", "0123456789abcdef"[*p >> 4], "0123456789abcdef"[*p & 15]);
			break;
		default:
			if (*p < 0x20)
				rv_dprintf(fd, "\\u00%c%c", "0123456789abcdef"[*p >> 4], "0123456789abcdef"[*p & 15]);
			else if (p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9)) {
				rv_dprintf(fd, "\\u202%c", p[2] == 0xa8 ? '8' : '9');
				p += 2;
			} else
				rv_dprintf(fd, "%c", *p);
		}
	}
	rv_dprintf(fd, "\"");
}

/* before reports whether a goes before b in the report: more calls
 * first, then the name in byte order (as Go sorts them). */
static int before(const struct func *a, const struct func *b)
{
	if (a->calls != b->calls)
		return a->calls > b->calls;
	return rv_strcmp(a->name, b->name) < 0;
}

static void report(const struct rv_exit *e)
{
	const struct func *top[TOP];
	uint64_t calls = 0, returns = 0, nfn = 0;
	uint32_t k, ntop = 0, i;

	rv_lock(&lock);
	for (k = 0; k < nfuncs; k++) {
		const struct func *f = &funcs[k];
		if (f->calls == 0 && f->returns == 0)
			continue;
		nfn++;
		calls += f->calls;
		returns += f->returns;
		if (ntop == TOP && !before(f, top[TOP - 1]))
			continue;
		i = ntop < TOP ? ntop++ : TOP - 1;
		for (; i > 0 && before(f, top[i - 1]); i--)
			top[i] = top[i - 1];
		top[i] = f;
	}
	rv_dprintf(e->fd, "{\"client\":\"calltrace\",\"calls\":%llu,\"returns\":%llu,\"functions\":%llu,\"threads\":%u,\"top\":",
		   (unsigned long long)calls, (unsigned long long)returns, (unsigned long long)nfn, ntids);
	/* Go writes an empty list as null. */
	if (ntop == 0)
		rv_dprintf(e->fd, "null");
	for (i = 0; i < ntop; i++) {
		rv_dprintf(e->fd, "%s{\"name\":", i > 0 ? "," : "[");
		json_string(e->fd, top[i]->name);
		rv_dprintf(e->fd, ",\"calls\":%llu,\"returns\":%llu}", (unsigned long long)top[i]->calls,
			   (unsigned long long)top[i]->returns);
	}
	if (ntop > 0)
		rv_dprintf(e->fd, "]");
	rv_dprintf(e->fd, ",\"trace\":");
	if (nhead == 0)
		rv_dprintf(e->fd, "null");
	for (i = 0; i < nhead; i++) {
		/* The line: depth spaces, "> " or "< ", the name. */
		static char line[4096];
		const char *name = funcs[head[i].func].name;
		uint64_t j, n = 0;
		for (j = 0; j < head[i].depth && n < sizeof line - 3; j++)
			line[n++] = ' ';
		line[n++] = head[i].ret ? '<' : '>';
		line[n++] = ' ';
		for (j = 0; name[j] != '\0' && n < sizeof line - 1; j++)
			line[n++] = name[j];
		line[n] = '\0';
		rv_dprintf(e->fd, "%s", i > 0 ? "," : "[");
		json_string(e->fd, line);
	}
	rv_dprintf(e->fd, "%s}\n", nhead > 0 ? "]" : "");
	if (lost != 0)
		rv_dprintf(2, "calltrace: %llu sites not recorded: out of memory\n", (unsigned long long)lost);
	rv_unlock(&lock);
}

int reachvm_client_init(struct rv_client *c, int argc, const char **argv)
{
	(void)argv;
	if (argc > 1) {
		rv_dprintf(2, "calltrace: takes no arguments\n");
		return 1;
	}
	if (c->version < 2) {
		rv_dprintf(2, "calltrace: needs reachvm's client interface 2 (rv_block.module), this one is %u\n", c->version);
		return 1;
	}
	c->name = "calltrace";
	c->block = block;
	c->module_load = module_load;
	c->trace = trace;
	c->exit = report;
	return 0;
}

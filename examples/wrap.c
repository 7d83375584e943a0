/*
 * wrap wraps malloc, calloc, realloc and free of the program's C library
 * (DynamoRIO's drwrap samples): at each module_load of a libc.so it
 * finds them by name (rv_module_lookup) and wraps them (rv_wrap). A pre
 * hook takes an allocation's size into the call's data, its post hook
 * the block the call returned; free's pre hook takes the block back.
 * Its report is that of reachvm's Go sample client of the same name: the
 * calls, the bytes asked for, the allocations by size class, and the
 * blocks never freed (the leaks), the largest first.
 *
 *     gcc -O2 -fPIC -shared -nostdlib -ffreestanding -fno-stack-protector \
 *         -mgeneral-regs-only -I include -o wrap.so examples/wrap.c
 *     reachvm run -c ./wrap.so -- ls
 */
#include "reachvm.h"

#define TOP 10

/* lock guards everything below: the hooks run on the calling threads,
 * at once. */
static int lock;

static uint64_t mallocs, callocs, reallocs, frees, failed, bytes, lost;

/* The live blocks, by address: their sizes. Open addressing with linear
 * probing, address 0 for a free slot, kept at most half full, in memory
 * of its own (mmap), grown by doubling. */
struct block {
	uint64_t addr;
	uint64_t size;
};

static struct block *live;
static uint64_t live_cap, nlive;

static uint64_t slot(uint64_t addr, uint64_t cap)
{
	return (addr * 0x9e3779b97f4a7c15ull) >> 32 & (cap - 1);
}

static void *map(uint64_t size)
{
	long r = rv_syscall6(9 /* mmap */, 0, (long)size, 3 /* PROT_READ|PROT_WRITE */,
			     0x22 /* MAP_PRIVATE|MAP_ANONYMOUS */, -1, 0);
	return r < 0 && r > -4096 ? NULL : (void *)r;
}

/* put sets the size of the block at addr (not 0), a new one or not; 0
 * on success, -1 if memory ran out. */
static int put(uint64_t addr, uint64_t size)
{
	uint64_t i;

	if (2 * (nlive + 1) > live_cap) {
		uint64_t cap = live_cap ? 2 * live_cap : 4096, k;
		struct block *t = map(cap * sizeof *t);
		if (t == NULL)
			return -1;
		for (k = 0; k < live_cap; k++) {
			if (live[k].addr == 0)
				continue;
			for (i = slot(live[k].addr, cap); t[i].addr != 0; i = (i + 1) & (cap - 1))
				;
			t[i] = live[k];
		}
		if (live != NULL)
			rv_syscall3(11 /* munmap */, (long)live, (long)(live_cap * sizeof *live), 0);
		live = t;
		live_cap = cap;
	}
	for (i = slot(addr, live_cap); live[i].addr != 0; i = (i + 1) & (live_cap - 1))
		if (live[i].addr == addr) {
			live[i].size = size;
			return 0;
		}
	live[i].addr = addr;
	live[i].size = size;
	nlive++;
	return 0;
}

/* del forgets the block at addr, if live. */
static void del(uint64_t addr)
{
	uint64_t i, j, k;

	if (live == NULL || addr == 0)
		return;
	for (i = slot(addr, live_cap); live[i].addr != addr; i = (i + 1) & (live_cap - 1))
		if (live[i].addr == 0)
			return;
	/* Backward shift: the blocks after it in its run move up to where
	 * their probes would find them. */
	for (j = i;;) {
		j = (j + 1) & (live_cap - 1);
		if (live[j].addr == 0)
			break;
		k = slot(live[j].addr, live_cap);
		if ((j > i && (k <= i || k > j)) || (j < i && k <= i && k > j)) {
			live[i] = live[j];
			i = j;
		}
	}
	live[i].addr = 0;
	nlive--;
}

/* size_class returns the power of two at or above size (0 for 0, and
 * for sizes past the largest power, as the Go sample's loop ends). */
static uint64_t size_class(uint64_t size)
{
	uint64_t c = 1;

	while (c < size && c != 0)
		c <<= 1;
	return size == 0 ? 0 : c;
}

/* classes counts the allocations by size class: classes[0] class 0,
 * classes[1+k] class 2^k. */
static uint64_t classes[65];

/* add records a block of size at p (0: a failed allocation).
 * Preconditions: lock is held. */
static void add(uint64_t p, uint64_t size)
{
	uint64_t c = size_class(size);
	int k = 0;

	if (p == 0) {
		failed++;
		return;
	}
	if (put(p, size) != 0)
		lost++;
	bytes += size;
	while (c > 1u && k < 64)
		c >>= 1, k++;
	classes[size_class(size) == 0 ? 0 : 1 + k]++;
}

static void malloc_pre(struct rv_wrapcall *w)
{
	w->data = (void *)(uintptr_t)w->args[0];
}

static void calloc_pre(struct rv_wrapcall *w)
{
	w->data = (void *)(uintptr_t)(w->args[0] * w->args[1]);
}

/* allocated is malloc's and calloc's post hook: the block the call
 * returned, of the size its pre hook left in data. */
static void allocated(struct rv_wrapcall *w, uint64_t *n)
{
	uint64_t p;

	if (w->unwound || rv_wrap_retval(w, &p) != RV_OK)
		return;
	rv_lock(&lock);
	(*n)++;
	add(p, (uint64_t)(uintptr_t)w->data);
	rv_unlock(&lock);
}

static void malloc_post(struct rv_wrapcall *w)
{
	allocated(w, &mallocs);
}

static void calloc_post(struct rv_wrapcall *w)
{
	allocated(w, &callocs);
}

/* realloc_post needs no pre hook: the post hook has the arguments the
 * call was made with. */
static void realloc_post(struct rv_wrapcall *w)
{
	uint64_t p, old = w->args[0], size = w->args[1];

	if (w->unwound || rv_wrap_retval(w, &p) != RV_OK)
		return;
	rv_lock(&lock);
	reallocs++;
	if (p == 0 && size != 0) {
		failed++; /* the old block stays */
	} else {
		del(old);
		if (size != 0)
			add(p, size);
	}
	rv_unlock(&lock);
}

static void free_pre(struct rv_wrapcall *w)
{
	uint64_t p = 0;

	rv_wrap_arg(w, 0, &p);
	rv_lock(&lock);
	frees++;
	del(p);
	rv_unlock(&lock);
}

/* wrap_fn wraps the function name of m, if m has it. */
static void wrap_fn(const struct rv_module *m, const char *name, void (*pre)(struct rv_wrapcall *),
		    void (*post)(struct rv_wrapcall *))
{
	uint64_t fn;

	if (rv_module_lookup(m, name, &fn) == RV_OK)
		rv_wrap(m, fn, pre, post);
}

static void module_load(const struct rv_module *m)
{
	const char *base = m->path, *p;

	for (p = m->path; *p != '\0'; p++)
		if (*p == '/')
			base = p + 1;
	for (p = "libc.so"; *p != '\0'; p++, base++)
		if (*base != *p)
			return;
	wrap_fn(m, "malloc", malloc_pre, malloc_post);
	wrap_fn(m, "calloc", calloc_pre, calloc_post);
	wrap_fn(m, "realloc", NULL, realloc_post);
	wrap_fn(m, "free", free_pre, NULL);
}

/* before reports whether leak a goes before b in the report: the larger
 * first, then the address's text in byte order (as Go sorts them). */
static int before(const struct block *a, const struct block *b)
{
	char x[20], y[20];

	if (a->size != b->size)
		return a->size > b->size;
	rv_hex(x, a->addr);
	rv_hex(y, b->addr);
	return rv_strcmp(x, y) < 0;
}

static void report(const struct rv_exit *e)
{
	const struct block *top[TOP];
	uint64_t leaked = 0, k, c;
	int ntop = 0, i, n = 0;

	rv_lock(&lock);
	for (k = 0; k < live_cap; k++) {
		const struct block *b = &live[k];
		if (b->addr == 0)
			continue;
		leaked += b->size;
		if (ntop == TOP && !before(b, top[TOP - 1]))
			continue;
		i = ntop < TOP ? ntop++ : TOP - 1;
		for (; i > 0 && before(b, top[i - 1]); i--)
			top[i] = top[i - 1];
		top[i] = b;
	}
	rv_dprintf(e->fd,
		   "{\"client\":\"wrap\",\"mallocs\":%llu,\"callocs\":%llu,\"reallocs\":%llu,\"frees\":%llu,\"failed\":%llu,"
		   "\"bytes_allocated\":%llu,\"leaked_blocks\":%llu,\"leaked_bytes\":%llu,\"sizes\":",
		   (unsigned long long)mallocs, (unsigned long long)callocs, (unsigned long long)reallocs,
		   (unsigned long long)frees, (unsigned long long)failed, (unsigned long long)bytes,
		   (unsigned long long)nlive, (unsigned long long)leaked);
	/* By class, ascending; Go writes an empty list as null. */
	for (k = 0; k < 65; k++) {
		if (classes[k] == 0)
			continue;
		c = k == 0 ? 0 : 1ull << (k - 1);
		rv_dprintf(e->fd, "%s{\"up_to\":%llu,\"count\":%llu}", n++ > 0 ? "," : "[", (unsigned long long)c,
			   (unsigned long long)classes[k]);
	}
	rv_dprintf(e->fd, "%s,\"top_leaks\":", n > 0 ? "]" : "null");
	for (i = 0; i < ntop; i++) {
		char addr[20];
		rv_hex(addr, top[i]->addr);
		rv_dprintf(e->fd, "%s{\"addr\":\"%s\",\"size\":%llu}", i > 0 ? "," : "[", addr,
			   (unsigned long long)top[i]->size);
	}
	rv_dprintf(e->fd, "%s}\n", ntop > 0 ? "]" : "null");
	if (lost != 0)
		rv_dprintf(2, "wrap: %llu blocks not kept: out of memory\n", (unsigned long long)lost);
	rv_unlock(&lock);
}

int reachvm_client_init(struct rv_client *c, int argc, const char **argv)
{
	(void)argv;
	if (argc > 1) {
		rv_dprintf(2, "wrap: takes no arguments\n");
		return 1;
	}
	if (c->version < 2) {
		rv_dprintf(2, "wrap: needs reachvm's client interface 2 (rv_wrap), this one is %u\n", c->version);
		return 1;
	}
	c->name = "wrap";
	c->module_load = module_load;
	c->exit = report;
	return 0;
}

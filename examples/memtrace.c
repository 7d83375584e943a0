/*
 * memtrace records every load and store the program makes, as reachvm's
 * Go sample client of the same name does, and writes the same file (the
 * format is in clients/memtrace_linux_amd64.go; clients.ReadMemtrace
 * reads it) and the same report. Before each instruction that accesses
 * memory it inserts a trace record per reference (rv_insert_record_ref),
 * tagged with a site number that stands for the instruction's PC, the
 * reference's size and how it is accessed; a rep-prefixed string
 * instruction's references get a record of rcx (the count) before them.
 * The trace event turns a buffer of records into a chunk of the file.
 *
 *     gcc -O2 -fPIC -shared -nostdlib -ffreestanding -fno-stack-protector \
 *         -mgeneral-regs-only -I include -o memtrace.so examples/memtrace.c
 *     reachvm run -c ./memtrace.so file=trace.bin -- ls
 *
 * Arguments: file=PATH (default memtrace.<pid>.bin) or drop (count the
 * records, write no file).
 */
#include "reachvm.h"

/* A site: an instruction's reference (ref >= 0), or the count record
 * before a repeated one (ref < 0). */
struct site {
	uint64_t pc;
	int64_t ref; /* INT64_MIN: the slot is free */
	uint64_t size;
	uint32_t id;   /* the site's number */
	uint8_t flags; /* 1 read, 2 write, 4 repeated; 8: a count record */
	uint8_t defined;
};

#define SITE_BITS 18
#define SITE_SLOTS (1u << SITE_BITS)
#define MAX_SITES (SITE_SLOTS - SITE_SLOTS / 8)

static struct site slots[SITE_SLOTS];
/* ids[id] is the slot of site id. */
static uint32_t ids[MAX_SITES];
static uint32_t nsites;
static int lock;

static uint64_t loads, stores, accesses, records, uncovered, bytes_written, lost;
static int fd = -1, failed;
static char path[256];

/* site returns the number of (pc, ref), made if new, or -1 when the
 * table is full. */
static int64_t site(uint64_t pc, int64_t ref, uint64_t size, uint8_t flags)
{
	uint64_t h = (pc * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)ref * 0xff51afd7ed558ccdull);
	uint32_t i = (uint32_t)(h >> (64 - SITE_BITS));
	int64_t id = -1;

	rv_lock(&lock);
	for (;;) {
		struct site *s = &slots[i];
		if (s->ref == INT64_MIN) {
			if (nsites < MAX_SITES) {
				s->pc = pc;
				s->ref = ref;
				s->size = size;
				s->flags = flags;
				s->id = nsites;
				ids[nsites] = i;
				id = nsites++;
			}
			break;
		}
		if (s->pc == pc && s->ref == ref) {
			id = s->id;
			break;
		}
		i = (i + 1) & (SITE_SLOTS - 1);
	}
	rv_unlock(&lock);
	return id;
}

static int starts_with_rep(const char *m)
{
	return m != NULL && m[0] == 'r' && m[1] == 'e' && m[2] == 'p';
}

static void block(struct rv_block *b)
{
	int i;
	uint32_t k;

	for (i = 0; i < b->n; i++) {
		const struct rv_instr *in = &b->instrs[i];
		int rep = starts_with_rep(in->mnemonic);
		if (in->nmems == 0) {
			if (in->has_mem)
				__atomic_fetch_add(&uncovered, 1, __ATOMIC_RELAXED);
			continue;
		}
		for (k = 0; k < in->nmems; k++) {
			const struct rv_memref *r = &in->mems[k];
			uint8_t flags = 0;
			int64_t id, cid;
			if ((r->flags & RV_MEM_ADDR_ONLY) || r->size == 0 || r->seg == RV_SEG_GS)
				continue;
			if (r->flags & RV_MEM_READ)
				flags |= 1;
			if (r->flags & RV_MEM_WRITE)
				flags |= 2;
			if (rep && (r->flags & RV_MEM_IMPLICIT))
				flags |= 4;
			id = site(in->pc, k, r->size, flags);
			if (id < 0) {
				__atomic_fetch_add(&lost, 1, __ATOMIC_RELAXED);
				continue;
			}
			if (flags & 4) {
				cid = site(in->pc, -1 - (int64_t)k, 0, 8);
				if (cid < 0) {
					__atomic_fetch_add(&lost, 1, __ATOMIC_RELAXED);
					continue;
				}
				rv_insert_record_addr(b, i, RV_RCX, 0, (uint32_t)cid);
			}
			rv_insert_record_ref(b, i, k, (uint32_t)id);
		}
	}
}

/* The chunk being built, its header first: 'T', the thread, the length.
 * An entry takes at most 55 bytes (RVMTRC02's memMaxEntry). */
static uint8_t chunk[14 + 4096 * 55];

/* uvarint stores v as the file's prefix varint: the first byte's count
 * of trailing zero bits, plus one, is the length n (1 to 8 bytes) and
 * the value is the n bytes, little-endian, shifted right by n; a first
 * byte of zero is followed by the value in 8 bytes. */
static size_t uvarint(uint8_t *p, uint64_t v)
{
	size_t n = 1, i;

	if (v >> 56 != 0) {
		p[0] = 0;
		for (i = 0; i < 8; i++)
			p[1 + i] = (uint8_t)(v >> (8 * i));
		return 9;
	}
	while (n < 8 && v >> (7 * n) != 0)
		n++;
	v = v << n | (uint64_t)1 << (n - 1);
	for (i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
	return n;
}

static size_t varint(uint8_t *p, int64_t v)
{
	return uvarint(p, (uint64_t)v << 1 ^ (uint64_t)(v >> 63));
}

static void out(const void *p, size_t n)
{
	const char *c = p;

	while (n > 0 && !failed) {
		long w = rv_write(fd, c, n);
		if (w <= 0) {
			failed = 1;
			return;
		}
		c += w;
		n -= (size_t)w;
		bytes_written += (uint64_t)w;
	}
}

static void trace(struct rv_thread *t, const struct rv_trace_record *recs, size_t n)
{
	size_t i, hn, len;
	uint64_t prev = 0, count = 1;

	rv_lock(&lock);
	chunk[0] = 'T';
	hn = 1 + uvarint(chunk + 1, (uint64_t)t->tid) + 4;
	len = hn;
	records += n;
	for (i = 0; i < n; i++) {
		struct site *s = &slots[ids[recs[i].tag]];
		uint64_t k = 1;
		if (s->flags & 8) {
			count = recs[i].addr;
			continue;
		}
		if (s->flags & 4) {
			k = count;
			count = 1;
		}
		accesses += k;
		if (s->flags & 1)
			loads += k;
		if (s->flags & 2)
			stores += k;
		if (fd < 0)
			continue;
		if (!s->defined) {
			s->defined = 1;
			len += uvarint(chunk + len, (uint64_t)recs[i].tag << 1 | 1);
			len += uvarint(chunk + len, s->pc);
			len += uvarint(chunk + len, s->size);
			chunk[len++] = s->flags;
		}
		len += uvarint(chunk + len, (uint64_t)recs[i].tag << 1);
		len += varint(chunk + len, (int64_t)(recs[i].addr - prev));
		prev = recs[i].addr;
		if (s->flags & 4)
			len += uvarint(chunk + len, k);
	}
	if (fd >= 0 && len > hn) {
		for (i = 0; i < 4; i++)
			chunk[hn - 4 + i] = (uint8_t)((len - hn) >> (8 * i));
		out(chunk, len);
	}
	rv_unlock(&lock);
}

static void report(const struct rv_exit *e)
{
	rv_dprintf(e->fd, "{\"client\":\"memtrace\",\"loads\":%llu,\"stores\":%llu,\"accesses\":%llu,\"records\":%llu,\"sites\":%u,\"uncovered\":%llu,",
		   (unsigned long long)loads, (unsigned long long)stores, (unsigned long long)accesses,
		   (unsigned long long)records, nsites, (unsigned long long)uncovered);
	if (fd >= 0)
		rv_dprintf(e->fd, "\"file\":\"%s\",", path);
	rv_dprintf(e->fd, "\"file_bytes\":%llu}\n", (unsigned long long)bytes_written);
	if (lost != 0)
		rv_dprintf(2, "memtrace: %llu references not traced: the site table is full\n", (unsigned long long)lost);
	if (failed)
		rv_dprintf(2, "memtrace: writing %s failed\n", path);
}

int reachvm_client_init(struct rv_client *c, int argc, const char **argv)
{
	int drop = 0, i;
	uint32_t k;
	const char *p = NULL;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] == 'd' && a[1] == 'r' && a[2] == 'o' && a[3] == 'p' && a[4] == '\0')
			drop = 1;
		else if (a[0] == 'f' && a[1] == 'i' && a[2] == 'l' && a[3] == 'e' && a[4] == '=')
			p = a + 5;
		else {
			rv_dprintf(2, "memtrace: takes file=PATH or drop, given %s\n", a);
			return 1;
		}
	}
	for (k = 0; k < SITE_SLOTS; k++)
		slots[k].ref = INT64_MIN;
	if (!drop) {
		size_t n = 0;
		if (p == NULL) {
			/* memtrace.<pid>.bin */
			long pid = rv_syscall3(39, 0, 0, 0);
			char d[20];
			int nd = 0;
			const char *pre = "memtrace.";
			while (*pre)
				path[n++] = *pre++;
			do {
				d[nd++] = (char)('0' + pid % 10);
				pid /= 10;
			} while (pid > 0);
			while (nd > 0)
				path[n++] = d[--nd];
			path[n++] = '.', path[n++] = 'b', path[n++] = 'i', path[n++] = 'n';
		} else {
			while (*p && n < sizeof path - 1)
				path[n++] = *p++;
		}
		path[n] = '\0';
		/* openat(AT_FDCWD, path, O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0644) */
		fd = (int)rv_syscall4(257, -100, (long)path, 01 | 0100 | 01000 | 02000000, 0644);
		if (fd < 0) {
			rv_dprintf(2, "memtrace: cannot create %s\n", path);
			return 1;
		}
		out("RVMTRC02", 8);
	}
	c->name = "memtrace";
	c->block = block;
	c->trace = trace;
	c->exit = report;
	return 0;
}

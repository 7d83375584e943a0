/*
 * bbcount counts the executions of each basic block: a counter of its
 * own for each block, in this library's .bss, one add at the block's
 * start. Its report is that of reachvm's Go sample client of the same
 * name: the blocks executed, the distinct blocks run, the instructions
 * they hold, and the ten most executed.
 *
 *     gcc -O2 -fPIC -shared -nostdlib -ffreestanding -fno-stack-protector \
 *         -mgeneral-regs-only -I include -o bbcount.so examples/bbcount.c
 *     reachvm run -c ./bbcount.so -- ls
 */
#include "reachvm.h"

/* A block is known by its address and its length in instructions (a
 * block translated again may end elsewhere). */
struct entry {
	uint64_t pc;
	uint64_t instrs; /* 0: the slot is free */
	uint64_t count;  /* the block's cell */
};

/* TABLE_BITS sizes the table: 64Ki blocks (1.5 MiB of .bss). */
#define TABLE_BITS 16
#define TABLE_SIZE (1u << TABLE_BITS)
#define TOP 10

/* table holds the blocks, open addressing; used counts its slots in
 * use; lost counts the blocks it had no room for, which go uncounted.
 * lock guards the table's slots (not the counts, which the translated
 * code adds to with lock add). */
static struct entry table[TABLE_SIZE];
static uint32_t used;
static uint64_t lost;
static int lock;

/* find returns the block's entry, made if new, or NULL if the table is
 * full. Preconditions: lock is held. */
static struct entry *find(uint64_t pc, uint64_t instrs)
{
	uint64_t h = (pc ^ instrs * 0x9e3779b97f4a7c15ull) * 0xff51afd7ed558ccdull;
	uint32_t i = (uint32_t)(h >> (64 - TABLE_BITS));

	for (;;) {
		struct entry *e = &table[i];
		if (e->instrs == 0) {
			if (used >= TABLE_SIZE - TABLE_SIZE / 8)
				return NULL;
			used++;
			e->pc = pc;
			e->instrs = instrs;
			return e;
		}
		if (e->pc == pc && e->instrs == instrs)
			return e;
		i = (i + 1) & (TABLE_SIZE - 1);
	}
}

static void block(struct rv_block *b)
{
	struct entry *e;

	rv_lock(&lock);
	e = find(b->pc, (uint64_t)b->n);
	rv_unlock(&lock);
	if (e == NULL) {
		__atomic_fetch_add(&lost, 1, __ATOMIC_RELAXED);
		return;
	}
	rv_insert_add(b, 0, &e->count, 1, 1);
}

/* before reports whether a goes before b in the report: more executions
 * first, then the address's text in byte order (as Go sorts it). */
static int before(const struct entry *a, const struct entry *b)
{
	char x[20], y[20];
	int i;

	if (a->count != b->count)
		return a->count > b->count;
	rv_hex(x, a->pc);
	rv_hex(y, b->pc);
	for (i = 0; x[i] == y[i] && x[i] != '\0'; i++)
		;
	return (unsigned char)x[i] < (unsigned char)y[i];
}

static void report(const struct rv_exit *e)
{
	const struct entry *top[TOP];
	uint64_t executed = 0, distinct = 0, instrs = 0;
	int ntop = 0, i, j;
	uint32_t k;

	for (k = 0; k < TABLE_SIZE; k++) {
		const struct entry *t = &table[k];
		uint64_t v = __atomic_load_n(&t->count, __ATOMIC_RELAXED);
		if (t->instrs == 0 || v == 0)
			continue;
		executed += v;
		distinct++;
		instrs += v * t->instrs;
		/* Insertion into the top list, kept sorted. */
		if (ntop == TOP && !before(t, top[TOP - 1]))
			continue;
		i = ntop < TOP ? ntop++ : TOP - 1;
		for (; i > 0 && before(t, top[i - 1]); i--)
			top[i] = top[i - 1];
		top[i] = t;
	}
	rv_dprintf(e->fd, "{\"client\":\"bbcount\",\"blocks_executed\":%llu,\"blocks_distinct\":%llu,\"instructions\":%llu,\"top\":[",
		   (unsigned long long)executed, (unsigned long long)distinct, (unsigned long long)instrs);
	for (j = 0; j < ntop; j++) {
		char pc[20];
		rv_hex(pc, top[j]->pc);
		rv_dprintf(e->fd, "%s{\"pc\":\"%s\",\"instructions\":%llu,\"count\":%llu}", j > 0 ? "," : "", pc,
			   (unsigned long long)top[j]->instrs, (unsigned long long)top[j]->count);
	}
	rv_dprintf(e->fd, "]}\n");
	if (lost != 0)
		rv_dprintf(2, "bbcount: %llu blocks not counted: the table is full\n", (unsigned long long)lost);
}

int reachvm_client_init(struct rv_client *c, int argc, const char **argv)
{
	(void)argv;
	if (argc > 1) {
		rv_dprintf(2, "bbcount: takes no arguments\n");
		return 1;
	}
	c->name = "bbcount";
	c->block = block;
	c->exit = report;
	return 0;
}

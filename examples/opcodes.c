/*
 * opcodes counts the instructions executed by mnemonic: a counter of its
 * own for each mnemonic, in this library's .bss, and at each block's
 * start one add to the counter of each mnemonic in the block, by how many
 * times it occurs there. Its report is that of reachvm's Go sample
 * client of the same name.
 *
 *     gcc -O2 -fPIC -shared -nostdlib -ffreestanding -fno-stack-protector \
 *         -mgeneral-regs-only -I include -o opcodes.so examples/opcodes.c
 *     reachvm run -c ./opcodes.so -- ls
 */
#include "reachvm.h"

/* A mnemonic is known by its string's address: reachvm gives each
 * mnemonic one string for the process's life. */
struct entry {
	const char *name; /* NULL: the slot is free */
	uint64_t count;   /* the mnemonic's cell */
};

#define TABLE_BITS 12
#define TABLE_SIZE (1u << TABLE_BITS)

/* table holds the mnemonics, open addressing; lock guards its slots (the
 * counts are added to by the translated code with lock add). */
static struct entry table[TABLE_SIZE];
static uint32_t used;
static uint64_t lost;
static int lock;

static struct entry *find(const char *name)
{
	uint64_t h = (uint64_t)(uintptr_t)name * 0x9e3779b97f4a7c15ull;
	uint32_t i = (uint32_t)(h >> (64 - TABLE_BITS));
	struct entry *e = NULL;

	rv_lock(&lock);
	for (;;) {
		struct entry *t = &table[i];
		if (t->name == name) {
			e = t;
			break;
		}
		if (t->name == NULL) {
			if (used < TABLE_SIZE - TABLE_SIZE / 8) {
				used++;
				t->name = name;
				e = t;
			}
			break;
		}
		i = (i + 1) & (TABLE_SIZE - 1);
	}
	rv_unlock(&lock);
	return e;
}

static void block(struct rv_block *b)
{
	int i, j;

	for (i = 0; i < b->n; i++) {
		const char *m = b->instrs[i].mnemonic;
		int64_t n = 1;
		if (m == NULL)
			m = "(unknown)";
		/* Once per mnemonic: the first of its occurrences adds them
		 * all. */
		for (j = 0; j < i; j++)
			if (b->instrs[j].mnemonic == b->instrs[i].mnemonic)
				break;
		if (j < i)
			continue;
		for (j = i + 1; j < b->n; j++)
			if (b->instrs[j].mnemonic == b->instrs[i].mnemonic)
				n++;
		struct entry *e = find(m);
		if (e == NULL) {
			__atomic_fetch_add(&lost, 1, __ATOMIC_RELAXED);
			continue;
		}
		rv_insert_add(b, 0, &e->count, n, 1);
	}
}

/* before reports whether a goes before b in the report: more executions
 * first, then the name in byte order (as Go sorts it). */
static int before(const struct entry *a, const struct entry *b)
{
	const unsigned char *x = (const unsigned char *)a->name, *y = (const unsigned char *)b->name;

	if (a->count != b->count)
		return a->count > b->count;
	while (*x != 0 && *x == *y)
		x++, y++;
	return *x < *y;
}

static const struct entry *sorted[TABLE_SIZE];

static void report(const struct rv_exit *e)
{
	uint64_t total = 0;
	int n = 0, i, j;
	uint32_t k;

	for (k = 0; k < TABLE_SIZE; k++) {
		const struct entry *t = &table[k];
		if (t->name == NULL || __atomic_load_n(&t->count, __ATOMIC_RELAXED) == 0)
			continue;
		total += t->count;
		for (i = n++; i > 0 && before(t, sorted[i - 1]); i--)
			sorted[i] = sorted[i - 1];
		sorted[i] = t;
	}
	rv_dprintf(e->fd, "{\"client\":\"opcodes\",\"instructions\":%llu,\"opcodes\":{", (unsigned long long)total);
	for (j = 0; j < n; j++)
		rv_dprintf(e->fd, "%s\"%s\":%llu", j > 0 ? "," : "", sorted[j]->name, (unsigned long long)sorted[j]->count);
	rv_dprintf(e->fd, "}}\n");
	if (lost != 0)
		rv_dprintf(2, "opcodes: %llu mnemonics not counted: the table is full\n", (unsigned long long)lost);
}

int reachvm_client_init(struct rv_client *c, int argc, const char **argv)
{
	(void)argv;
	if (argc > 1) {
		rv_dprintf(2, "opcodes: takes no arguments\n");
		return 1;
	}
	c->name = "opcodes";
	c->block = block;
	c->exit = report;
	return 0;
}

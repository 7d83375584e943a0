/*
 * inscount counts the instructions the program executes: at the start of
 * each basic block, one add of the block's length to a counter in this
 * library's .bss (DynamoRIO's inscount sample; the C twin of reachvm's
 * Go sample client of the same name, with the same report).
 *
 *     gcc -O2 -fPIC -shared -nostdlib -ffreestanding -fno-stack-protector \
 *         -mgeneral-regs-only -I include -o inscount.so examples/inscount.c
 *     reachvm run -c ./inscount.so -- ls
 *
 * Each thread adds to a cell of its own, with a plain add: a block is
 * translated for one thread (rv_block.thread), so its code adds to that
 * thread's cell, which no other thread's code touches. A cell shared by
 * all threads would need a locked add, several times as slow, and even
 * one thread's adds to a single cell wait for each other's stores.
 */
#include "reachvm.h"

/* MAX_THREADS bounds the threads with cells of their own; later ones
 * share one cell, with locked adds. */
#define MAX_THREADS 4096

/* cells are the threads' cells, given out in order (nthreads) and never
 * taken back: code translated for a thread that ended may still run for
 * a thread its machine runs next, and its adds must still count. shared
 * is the cell of the threads past MAX_THREADS, and of code translated
 * before its thread's start. */
static uint64_t cells[MAX_THREADS];
static uint32_t nthreads;
static uint64_t shared;

static void thread_start(struct rv_thread *t)
{
	uint32_t i = __atomic_fetch_add(&nthreads, 1, __ATOMIC_RELAXED);

	t->data = i < MAX_THREADS ? &cells[i] : NULL;
}

static void block(struct rv_block *b)
{
	uint64_t *cell = b->thread->data;

	if (cell != NULL)
		rv_insert_add(b, 0, cell, b->n, 0);
	else
		rv_insert_add(b, 0, &shared, b->n, 1);
}

static void report(const struct rv_exit *e)
{
	uint64_t n = __atomic_load_n(&shared, __ATOMIC_RELAXED);
	uint32_t i;

	for (i = 0; i < MAX_THREADS; i++)
		n += __atomic_load_n(&cells[i], __ATOMIC_RELAXED);
	rv_dprintf(e->fd, "{\"client\":\"inscount\",\"instructions\":%llu}\n", (unsigned long long)n);
}

int reachvm_client_init(struct rv_client *c, int argc, const char **argv)
{
	(void)argv;
	if (argc > 1) {
		rv_dprintf(2, "inscount: takes no arguments\n");
		return 1;
	}
	c->name = "inscount";
	c->thread_start = thread_start;
	c->block = block;
	c->exit = report;
	return 0;
}

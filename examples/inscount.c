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
 * The add is locked: threads share the counter.
 */
#include "reachvm.h"

/* count is the instructions executed so far, by every thread. */
static uint64_t count;

static void block(struct rv_block *b)
{
	rv_insert_add(b, 0, &count, b->n, 1);
}

static void report(const struct rv_exit *e)
{
	rv_dprintf(e->fd, "{\"client\":\"inscount\",\"instructions\":%llu}\n",
		   (unsigned long long)__atomic_load_n(&count, __ATOMIC_RELAXED));
}

int reachvm_client_init(struct rv_client *c, int argc, const char **argv)
{
	(void)argv;
	if (argc > 1) {
		rv_dprintf(2, "inscount: takes no arguments\n");
		return 1;
	}
	c->name = "inscount";
	c->block = block;
	c->exit = report;
	return 0;
}

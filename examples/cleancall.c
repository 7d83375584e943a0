/*
 * cleancall counts the blocks the program executes, and the distinct
 * block addresses, with a clean call: a C function the translated code
 * calls at the start of each block, given the block's address
 * (rv_arg_pc) and length. It is the slow way to count (an add inline,
 * as inscount does it, costs a fraction of a call), shown for what a
 * clean call can do that an add cannot: run any code, with any of the
 * application's registers.
 *
 *     gcc -O2 -fPIC -shared -nostdlib -ffreestanding -fno-stack-protector \
 *         -mgeneral-regs-only -I include -o cleancall.so examples/cleancall.c
 *     reachvm run -c ./cleancall.so -- ls
 *
 * A clean call runs on the application's thread, with the
 * application's state saved around it: it keeps to plain code (no C
 * library, no vector registers: -mgeneral-regs-only) and keeps its data
 * with atomics, as threads may call it at once.
 */
#include "reachvm.h"

/* calls is the clean calls made; instrs the instructions of the blocks
 * they were made for; first the address of the first block called for
 * (0 until then); rsp_seen whether a call saw a plausible stack
 * pointer. */
static uint64_t calls, instrs, first;
static uint64_t rsp_seen;

/* at is the clean call: pc is the block's address, n its length, sp the
 * application's stack pointer before the block. */
static void at(uint64_t pc, uint64_t n, uint64_t sp)
{
	uint64_t zero = 0;

	__atomic_fetch_add(&calls, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&instrs, n, __ATOMIC_RELAXED);
	__atomic_compare_exchange_n(&first, &zero, pc, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
	if (sp != 0 && (sp & 7) == 0)
		__atomic_store_n(&rsp_seen, 1, __ATOMIC_RELAXED);
}

static void block(struct rv_block *b)
{
	rv_insert_clean_call(b, 0, (void *)at, 3, rv_arg_pc(), rv_arg_const(b->n), rv_arg_reg(RV_RSP));
}

static void report(const struct rv_exit *e)
{
	rv_dprintf(e->fd, "{\"client\":\"cleancall\",\"calls\":%llu,\"instructions\":%llu,\"first\":\"0x%llx\",\"rsp_seen\":%llu}\n",
		   (unsigned long long)calls, (unsigned long long)instrs,
		   (unsigned long long)first, (unsigned long long)rsp_seen);
}

int reachvm_client_init(struct rv_client *c, int argc, const char **argv)
{
	(void)argc;
	(void)argv;
	c->name = "cleancall";
	c->block = block;
	c->exit = report;
	return 0;
}

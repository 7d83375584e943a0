/* memtrace: a native client for TestNativeTrace, freestanding. Before
 * each block it records rsp-8 (tag 1); given the address of the ea
 * program's probe load (argv[1], hex), it records the load's effective
 * address (tag 7). Its trace event counts the records by tag, sums the
 * probe's addresses and counts the buffers it was given. With a second
 * argument, "all", it records the address of every instruction with a
 * memory operand (rv_instr.has_mem; tag 9) too. */
#include "reachvm.h"

static uint64_t probe;
static int all;
static uint64_t flushes, recs_total, tag1, tag7, tag7_sum, tag9, bad, biggest;

static void block(struct rv_block *b)
{
	int i;

	rv_insert_record_addr(b, 0, RV_RSP, -8, 1);
	for (i = 0; i < b->n; i++)
		if (probe != 0 && b->instrs[i].pc == probe)
			rv_insert_record_ea(b, i, 7);
		else if (all && b->instrs[i].has_mem)
			rv_insert_record_ea(b, i, 9);
}

static void trace(struct rv_thread *t, const struct rv_trace_record *recs, size_t n)
{
	size_t i;

	if (t == NULL || n == 0)
		bad++;
	flushes++;
	recs_total += n;
	if (n > biggest)
		biggest = n;
	for (i = 0; i < n; i++) {
		if (recs[i].extra != 0)
			bad++;
		if (recs[i].tag == 1) {
			tag1++;
			if (recs[i].addr == 0 || (recs[i].addr & 7) != 0)
				bad++; /* a stack address, 8-aligned at a block's start (mostly) */
		} else if (recs[i].tag == 7) {
			tag7++;
			tag7_sum += recs[i].addr;
		} else if (recs[i].tag == 9) {
			tag9++;
		} else {
			bad++;
		}
	}
}

static void report(const struct rv_exit *e)
{
	rv_dprintf(e->fd, "{\"flushes\":%llu,\"records\":%llu,\"biggest\":%llu,\"tag1\":%llu,\"tag7\":%llu,\"tag7_sum\":%llu,\"tag9\":%llu,\"bad\":%llu}\n",
		   (unsigned long long)flushes, (unsigned long long)recs_total, (unsigned long long)biggest,
		   (unsigned long long)tag1, (unsigned long long)tag7, (unsigned long long)tag7_sum,
		   (unsigned long long)tag9, (unsigned long long)bad);
}

int reachvm_client_init(struct rv_client *c, int argc, const char **argv)
{
	const char *s;

	if (argc > 1)
		for (s = argv[1]; *s != '\0'; s++)
			probe = probe << 4 | (uint64_t)(*s <= '9' ? *s - '0' : *s - 'a' + 10);
	all = argc > 2;
	c->block = block;
	c->trace = trace;
	c->exit = report;
	return 0;
}

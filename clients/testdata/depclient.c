/* depclient: a native client whose block event and cell are in a
 * library it needs (dep.c, found next to it through its $ORIGIN
 * rpath): it counts instructions as inscount does. */
#include "reachvm.h"

extern uint64_t dep_cell;
void dep_block(struct rv_block *b);

static void report(const struct rv_exit *e)
{
	rv_dprintf(e->fd, "{\"client\":\"inscount\",\"instructions\":%llu}\n", (unsigned long long)dep_cell);
}

int reachvm_client_init(struct rv_client *c, int argc, const char **argv)
{
	(void)argc;
	(void)argv;
	c->block = dep_block;
	c->exit = report;
	return 0;
}

/* empty: a native client whose block event inserts nothing, for
 * BenchmarkNativeTranslate: the cost of the crossing per block. */
#include "reachvm.h"

static void block(struct rv_block *b)
{
	(void)b;
}

int reachvm_client_init(struct rv_client *c, int argc, const char **argv)
{
	(void)argc;
	(void)argv;
	c->block = block;
	return 0;
}

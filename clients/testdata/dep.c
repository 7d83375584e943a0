/* dep: a library a native client needs (depclient.c), loaded privately
 * with it: its block event and its cell are the client's. */
#include "reachvm.h"

uint64_t dep_cell;

void dep_block(struct rv_block *b)
{
	rv_insert_add(b, 0, &dep_cell, b->n, 1);
}

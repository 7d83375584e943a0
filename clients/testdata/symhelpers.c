/* symhelpers exports the header's module helpers for FuzzNativeSymbols,
 * which calls them from Go on the tables reachvm makes of a real
 * library. A client too (its init does nothing), so that it builds and
 * loads as one. */
#include "reachvm.h"

/* sym_at is rv_module_symbol: out[0] the function's start, out[1] its
 * name. */
long sym_at(const struct rv_module *m, uint64_t pc, uint64_t *out)
{
	const struct rv_symbol *s;
	int r = rv_module_symbol(m, pc, out != NULL ? &s : NULL);

	if (r == RV_OK) {
		out[0] = s->start;
		out[1] = (uint64_t)(uintptr_t)s->name;
	}
	return r;
}

/* lookup is rv_module_lookup. */
long lookup(const struct rv_module *m, const char *name, uint64_t *addr)
{
	return rv_module_lookup(m, name, addr);
}

int reachvm_client_init(struct rv_client *c, int argc, const char **argv)
{
	(void)c;
	(void)argc;
	(void)argv;
	return 0;
}

/* callsite: a native client for TestNativeCleanCall, freestanding. At
 * each block's start it inserts a clean call of site, which checks from
 * its return address that it was called by a rel32 call to itself (the
 * 5 bytes before it are e8 and a displacement to site) and records the
 * range of the call sites. Given the address of the test program's
 * probe instruction (`mov 16(%rdi,%rsi,8), %rax`, argv[1] in hex), it
 * inserts before it a clean call of ea with rv_arg_ea, the registers
 * rdi and rsi, rv_arg_pc and a constant, and checks that the effective
 * address is rdi+rsi*8+16; and before the instruction after it (probe's
 * ret) a clean call given rv_arg_context, which adds 1000 to rax: the
 * program's sum grows by 10000. */
#include "reachvm.h"

static uint64_t probe;
static uint64_t sites_ok, sites_bad, ret_lo = ~0ull, ret_hi;
static uint64_t ea_calls, ea_ok, ea_bad;

static void site(void)
{
	uint64_t ret = (uint64_t)(uintptr_t)__builtin_return_address(0);
	const uint8_t *p = (const uint8_t *)(uintptr_t)(ret - 5);
	int32_t rel = (int32_t)((uint32_t)p[1] | (uint32_t)p[2] << 8 | (uint32_t)p[3] << 16 | (uint32_t)p[4] << 24);
	uint64_t lo, hi;

	if (p[0] == 0xe8 && ret + (int64_t)rel == (uint64_t)(uintptr_t)site)
		__atomic_fetch_add(&sites_ok, 1, __ATOMIC_RELAXED);
	else
		__atomic_fetch_add(&sites_bad, 1, __ATOMIC_RELAXED);
	lo = __atomic_load_n(&ret_lo, __ATOMIC_RELAXED);
	while (ret < lo && !__atomic_compare_exchange_n(&ret_lo, &lo, ret, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
	hi = __atomic_load_n(&ret_hi, __ATOMIC_RELAXED);
	while (ret > hi && !__atomic_compare_exchange_n(&ret_hi, &hi, ret, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

static void ea(uint64_t addr, uint64_t rdi, uint64_t rsi, uint64_t pc, uint64_t k)
{
	__atomic_fetch_add(&ea_calls, 1, __ATOMIC_RELAXED);
	if (addr == rdi + rsi * 8 + 16 && pc == probe && k == 77)
		__atomic_fetch_add(&ea_ok, 1, __ATOMIC_RELAXED);
	else
		__atomic_fetch_add(&ea_bad, 1, __ATOMIC_RELAXED);
}

static uint64_t ctx_calls;

static void bump(struct rv_context *ctx)
{
	__atomic_fetch_add(&ctx_calls, 1, __ATOMIC_RELAXED);
	ctx->regs[RV_RAX] += 1000;
}

static void block(struct rv_block *b)
{
	int i;

	rv_insert_clean_call(b, 0, (void *)site, 0);
	for (i = 0; i < b->n; i++)
		if (probe != 0 && b->instrs[i].pc == probe)
			rv_insert_clean_call(b, i, (void *)ea, 5, rv_arg_ea(), rv_arg_reg(RV_RDI), rv_arg_reg(RV_RSI),
					     rv_arg_pc(), rv_arg_const(77));
		else if (probe != 0 && b->instrs[i].pc == probe + 5)
			rv_insert_clean_call(b, i, (void *)bump, 1, rv_arg_context());
}

static void report(const struct rv_exit *e)
{
	rv_dprintf(e->fd, "{\"sites_ok\":%llu,\"sites_bad\":%llu,\"ret_lo\":%llu,\"ret_hi\":%llu,\"site\":%llu,\"ea_calls\":%llu,\"ea_ok\":%llu,\"ea_bad\":%llu,\"ctx_calls\":%llu}\n",
		   (unsigned long long)sites_ok, (unsigned long long)sites_bad, (unsigned long long)ret_lo,
		   (unsigned long long)ret_hi, (unsigned long long)(uintptr_t)site, (unsigned long long)ea_calls,
		   (unsigned long long)ea_ok, (unsigned long long)ea_bad, (unsigned long long)ctx_calls);
}

int reachvm_client_init(struct rv_client *c, int argc, const char **argv)
{
	const char *s;

	if (argc > 1) {
		for (s = argv[1]; *s != '\0'; s++) {
			int d = *s >= '0' && *s <= '9' ? *s - '0' : *s >= 'a' && *s <= 'f' ? *s - 'a' + 10 : -1;
			if (d < 0)
				return 1;
			probe = probe << 4 | (uint64_t)d;
		}
	}
	c->block = block;
	c->exit = report;
	return 0;
}

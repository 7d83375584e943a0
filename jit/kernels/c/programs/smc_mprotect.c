/* smc_mprotect: code written into a read-write page, made read-execute,
 * called; then the page made writable again, the code rewritten, made
 * read-execute and called again, three times: it prints 7, 8 and 9, as
 * natively (a translator that kept its first translation prints 7 three
 * times). Then the page is made read-execute once more, unchanged, and
 * called: 9 again. */
#include "rt.h"
#include "../jitcode.h"

#define PG 4096L

int main(int argc, char **argv, char **envp) {
	unsigned char *p = (unsigned char *)rt_mmap(0, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if ((long)p < 0)
		return 1;
	for (int v = 7; v <= 9; v++) {
		if (rt_mprotect(p, PG, PROT_READ | PROT_WRITE) != 0)
			return 2;
		jit_mov_ret(p, v);
		if (rt_mprotect(p, PG, PROT_READ | PROT_EXEC) != 0)
			return 3;
		call_print(p);
	}
	if (rt_mprotect(p, PG, PROT_READ | PROT_EXEC) != 0)
		return 4;
	call_print(p);
	return 0;
}

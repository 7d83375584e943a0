/* kernels: runs one of the jit's kernels (../kernels) as a program:
 * "kernels NAME N [REPEAT]" prints NAME and the kernel's result. */
#include "rt.h"

long k_fib(long), k_loops(long), k_fnptr(long), k_interp(long), k_sse2(long),
	k_riprel(long), k_bigstack(long), k_sort(long), k_avx2(long),
	k_dcalls(long), k_icalls(long), k_rets(long);

static const struct {
	const char *name;
	long (*fn)(long);
} all[] = {
	{"k_fib", k_fib}, {"k_loops", k_loops}, {"k_fnptr", k_fnptr},
	{"k_interp", k_interp}, {"k_sse2", k_sse2}, {"k_riprel", k_riprel},
	{"k_bigstack", k_bigstack}, {"k_sort", k_sort}, {"k_avx2", k_avx2},
	{"k_dcalls", k_dcalls}, {"k_icalls", k_icalls}, {"k_rets", k_rets},
};

int main(int argc, char **argv, char **envp) {
	if (argc < 3)
		return 2;
	long n = atol_(argv[2]), rep = argc > 3 ? atol_(argv[3]) : 1;
	for (unsigned i = 0; i < sizeof all / sizeof all[0]; i++)
		if (streq(argv[1], all[i].name)) {
			long r = 0;
			for (long k = 0; k < rep; k++)
				r = all[i].fn(n);
			puts_(all[i].name);
			puts_(" ");
			putn(r);
			puts_("\n");
			return 0;
		}
	return 3;
}

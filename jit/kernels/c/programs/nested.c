/* nested: main -> f1 -> f2 -> f3, each a real call and frame, and f3
 * writes through a null pointer: the program dies of SIGSEGV in f3, three
 * calls deep. The debugger tests build it -O0 -g -fno-omit-frame-pointer
 * and check that gdb's backtrace under reachvm names f3, f2, f1 and main.
 * "nested ok" writes to a variable instead and exits 0, silently. */
#include "rt.h"

long *volatile target;
volatile long sink;

__attribute__((noinline)) void f3(long v) {
	*target = v;
	sink++;
}

__attribute__((noinline)) void f2(long v) {
	f3(v + 1);
	sink++;
}

__attribute__((noinline)) void f1(long v) {
	f2(v * 2);
	sink++;
}

int main(int argc, char **argv, char **envp) {
	long ok;
	if (argc > 1 && streq(argv[1], "ok"))
		target = &ok;
	f1(argc);
	return 0;
}

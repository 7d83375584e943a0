/* slots N: N rounds of calls that go through a slot, and a checksum of
 * their results: libc's toupper, tolower and labs from several call
 * sites each, through the PLT (or, built with -fno-plt, through the GOT
 * directly), small functions whose return comes back to every caller;
 * and calls through a global function pointer that the program changes
 * as it runs (every 1000 rounds, among libc's toupper and tolower and a
 * function of its own). Under reachvm such a call goes on into its callee
 * behind a guard that the slot still holds it: a changed pointer, or a
 * PLT slot bound lazily at the first call, makes the guard miss. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>

int (*op)(int) = toupper;

__attribute__((noinline)) static int twice(int c) { return 2 * c; }

__attribute__((noinline)) static long mix(long h, int c) {
	h = h * 31 + (toupper)(c);
	h = h * 31 + (tolower)(c);
	return h;
}

__attribute__((noinline)) static long step(long h, long i) {
	int c = 'a' + (int)(i % 26);
	h = h * 31 + op(c);
	h = mix(h, c ^ 0x20);
	h += (labs)(h % 1000 - 500);
	return h ^ (long)(toupper)(c + 1) << 3;
}

int main(int argc, char **argv) {
	long n = argc > 1 ? atol(argv[1]) : 100000;
	long h = 0;
	for (long i = 0; i < n; i++) {
		if (i % 1000 == 999) {
			int k = (int)(i / 1000 % 3);
			op = k == 0 ? toupper : k == 1 ? tolower : twice;
		}
		h = step(h, i);
	}
	printf("%ld %ld\n", n, h);
	return 0;
}

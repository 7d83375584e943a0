// tls: __thread variables in the main thread: initialised (.tdata),
// zeroed (.tbss), over-aligned, reached from another function and
// through their addresses, and errno (glibc's own TLS).
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__thread int counter = 42;
__thread char name[32] = "initial";
__thread long zeroed[64];
__thread long aligned __attribute__((aligned(64))) = 7;
static __thread struct {
	int a;
	double b;
} pair = {3, 2.5};

__attribute__((noinline)) static int *counter_addr(void) { return &counter; }

__attribute__((noinline)) static void bump(int n) {
	for (int i = 0; i < n; i++)
		counter++;
	zeroed[n % 64] += n;
}

int main(void) {
	long z = 0;
	for (int i = 0; i < 64; i++)
		z |= zeroed[i];
	printf("initial: counter %d name %s zeroed %ld aligned %ld pair %d %.1f\n", counter, name, z, aligned, pair.a, pair.b);
	printf("aligned to 64: %s\n", ((uintptr_t)&aligned & 63) == 0 ? "yes" : "no");
	bump(10);
	*counter_addr() += 100;
	strcpy(name, "changed");
	pair.b *= 4;
	printf("after: counter %d name %s zeroed[10] %ld pair %.1f\n", counter, name, zeroed[10], pair.b);
	printf("same address: %s\n", counter_addr() == &counter ? "yes" : "no");
	errno = 0;
	strtol("99999999999999999999999", NULL, 10);
	printf("errno %s\n", errno == ERANGE ? "ERANGE" : "other");
	return 0;
}

// hello: the smallest glibc program: stdio to standard output and
// standard error, and an exit status from main.
#include <stdio.h>

int main(void) {
	puts("hello, world");
	fprintf(stderr, "hello on stderr\n");
	return 0;
}

/* wrapme: calls for a client to wrap. add(a, b) is called 10 times;
 * twice(x) tail-calls add (its post hook sees add's result); jumper()
 * longjmps out past itself (no return); skipme() returns 1 unless a
 * client skips it. Prints what it got; exits 0. */
#include <setjmp.h>
#include <stdio.h>

__attribute__((noinline)) long add(long a, long b) {
	__asm__ volatile("");
	return a + b;
}

__attribute__((noinline)) long twice(long x) { return add(x, x); }

static jmp_buf env;

__attribute__((noinline)) long jumper(long x) {
	if (x > 0)
		longjmp(env, 1);
	return x;
}

__attribute__((noinline)) long skipme(void) {
	__asm__ volatile("");
	return 1;
}

int main(void) {
	long s = 0;
	for (long i = 0; i < 10; i++)
		s += add(i, 1);
	printf("sum %ld\n", s);
	printf("twice %ld\n", twice(21));
	if (setjmp(env) == 0)
		jumper(1);
	printf("after longjmp %ld\n", add(100, 200));
	printf("skipme %ld\n", skipme());
	return 0;
}

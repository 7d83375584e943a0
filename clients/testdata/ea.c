/* ea: the program of TestNativeCleanCall's effective addresses: probe
 * loads arr[i+2], and main sums ten of them and prints the sum. */
#include <stdio.h>

long probe(long *base, long i);
__asm__(".text\n.globl probe\n.type probe, @function\nprobe:\n\tmovq 16(%rdi,%rsi,8), %rax\n\tret\n.size probe, .-probe\n");

long arr[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

int main(void)
{
	long s = 0;

	for (long i = 0; i < 10; i++)
		s += probe(arr, i);
	printf("%ld\n", s);
	return 0;
}

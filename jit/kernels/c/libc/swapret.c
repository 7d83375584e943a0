/* swapret: a function that replaces its own return address (as
 * coroutine switches, hand-written trampolines and function wrappers do):
 * swapret returns to landing, which jumps back to the real return
 * address. The return the translator predicted (the followed call's)
 * must give way to the one on the stack. Prints 465. */
#include <stdio.h>
long swapret(void);
__asm__(".text\n.globl swapret\nswapret:\n mov (%rsp), %rcx\n lea landing(%rip), %rax\n mov %rax, (%rsp)\n ret\nlanding:\n mov $42, %eax\n jmp *%rcx\n");
int main(void) {
	long s = 0;
	for (int i = 0; i < 10; i++) s += swapret() + i;
	printf("%ld\n", s);
	return 0;
}

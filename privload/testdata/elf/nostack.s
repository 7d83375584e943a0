# nostack.s: a library without a .note.GNU-stack section, so ld emits no
# PT_GNU_STACK, which glibc takes as asking for an executable stack.
	.text
	.globl	fx_nostack
	.type	fx_nostack, @function
fx_nostack:
	movl	$7, %eax
	ret
	.size	fx_nostack, .-fx_nostack

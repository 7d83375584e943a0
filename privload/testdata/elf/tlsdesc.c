/* tlsdesc.c: thread-local variables reached through TLS descriptors
 * (built with -mtls-dialect=gnu2: R_X86_64_TLSDESC), and a hand-written
 * descriptor call that checks what the descriptor ABI promises: every
 * register but rax comes back unchanged, vector registers included, on
 * the first access from a thread (privload's slow path, a call into Go)
 * as on later ones. */
__thread long fx_desc = 3;
static __thread long fx_desc_local = 4;

long fx_desc_get(void) { return fx_desc + fx_desc_local; }

long fx_desc_bump(long d)
{
	fx_desc += d;
	fx_desc_local += 2 * d;
	return fx_desc + fx_desc_local;
}

/* fx_desc_check sets rdi, rsi, rdx, rcx, r8-r11 and xmm0-xmm15 to known
 * values, calls fx_desc's descriptor, and returns fx_desc's address if
 * they all survived, 0 if not. */
long fx_desc_check(void);
__asm__(
	".text\n"
	".globl fx_desc_check\n"
	".type fx_desc_check,@function\n"
	"fx_desc_check:\n"
	"	push %rbx\n"
	"	mov $0x1001, %rdi\n"
	"	mov $0x1002, %rsi\n"
	"	mov $0x1003, %rdx\n"
	"	mov $0x1004, %rcx\n"
	"	mov $0x1005, %r8\n"
	"	mov $0x1006, %r9\n"
	"	mov $0x1007, %r10\n"
	"	mov $0x1008, %r11\n"
	"	mov $0x2000, %rbx\n	movq %rbx, %xmm0\n"
	"	mov $0x2001, %rbx\n	movq %rbx, %xmm1\n"
	"	mov $0x2002, %rbx\n	movq %rbx, %xmm2\n"
	"	mov $0x2003, %rbx\n	movq %rbx, %xmm3\n"
	"	mov $0x2004, %rbx\n	movq %rbx, %xmm4\n"
	"	mov $0x2005, %rbx\n	movq %rbx, %xmm5\n"
	"	mov $0x2006, %rbx\n	movq %rbx, %xmm6\n"
	"	mov $0x2007, %rbx\n	movq %rbx, %xmm7\n"
	"	mov $0x2008, %rbx\n	movq %rbx, %xmm8\n"
	"	mov $0x2009, %rbx\n	movq %rbx, %xmm9\n"
	"	mov $0x200a, %rbx\n	movq %rbx, %xmm10\n"
	"	mov $0x200b, %rbx\n	movq %rbx, %xmm11\n"
	"	mov $0x200c, %rbx\n	movq %rbx, %xmm12\n"
	"	mov $0x200d, %rbx\n	movq %rbx, %xmm13\n"
	"	mov $0x200e, %rbx\n	movq %rbx, %xmm14\n"
	"	mov $0x200f, %rbx\n	movq %rbx, %xmm15\n"
	"	leaq fx_desc@TLSDESC(%rip), %rax\n"
	"	call *fx_desc@TLSCALL(%rax)\n"
	"	add %fs:0, %rax\n"
	"	cmp $0x1001, %rdi\n	jne 1f\n"
	"	cmp $0x1002, %rsi\n	jne 1f\n"
	"	cmp $0x1003, %rdx\n	jne 1f\n"
	"	cmp $0x1004, %rcx\n	jne 1f\n"
	"	cmp $0x1005, %r8\n	jne 1f\n"
	"	cmp $0x1006, %r9\n	jne 1f\n"
	"	cmp $0x1007, %r10\n	jne 1f\n"
	"	cmp $0x1008, %r11\n	jne 1f\n"
	"	movq %xmm0, %rbx\n	cmp $0x2000, %rbx\n	jne 1f\n"
	"	movq %xmm1, %rbx\n	cmp $0x2001, %rbx\n	jne 1f\n"
	"	movq %xmm2, %rbx\n	cmp $0x2002, %rbx\n	jne 1f\n"
	"	movq %xmm3, %rbx\n	cmp $0x2003, %rbx\n	jne 1f\n"
	"	movq %xmm4, %rbx\n	cmp $0x2004, %rbx\n	jne 1f\n"
	"	movq %xmm5, %rbx\n	cmp $0x2005, %rbx\n	jne 1f\n"
	"	movq %xmm6, %rbx\n	cmp $0x2006, %rbx\n	jne 1f\n"
	"	movq %xmm7, %rbx\n	cmp $0x2007, %rbx\n	jne 1f\n"
	"	movq %xmm8, %rbx\n	cmp $0x2008, %rbx\n	jne 1f\n"
	"	movq %xmm9, %rbx\n	cmp $0x2009, %rbx\n	jne 1f\n"
	"	movq %xmm10, %rbx\n	cmp $0x200a, %rbx\n	jne 1f\n"
	"	movq %xmm11, %rbx\n	cmp $0x200b, %rbx\n	jne 1f\n"
	"	movq %xmm12, %rbx\n	cmp $0x200c, %rbx\n	jne 1f\n"
	"	movq %xmm13, %rbx\n	cmp $0x200d, %rbx\n	jne 1f\n"
	"	movq %xmm14, %rbx\n	cmp $0x200e, %rbx\n	jne 1f\n"
	"	movq %xmm15, %rbx\n	cmp $0x200f, %rbx\n	jne 1f\n"
	"	pop %rbx\n"
	"	ret\n"
	"1:	xor %eax, %eax\n"
	"	pop %rbx\n"
	"	ret\n"
	".size fx_desc_check, .-fx_desc_check\n");

/* fx_desc_addr returns fx_desc's address, as the compiler computes it. */
long *fx_desc_addr(void) { return &fx_desc; }

/*
 * rep: freestanding (no libc) rep-prefixed string instructions with
 * known counts, for the test that inscount counts a rep instruction once
 * per execution where valgrind's lackey counts one per iteration plus
 * the last check (refs_linux_test.go's repExtra). Exits 0.
 */
static char src[128], dst[128], a[64], b[64];

__attribute__((noinline)) static void movsb(char *d, const char *s, long n) {
	__asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
}

__attribute__((noinline)) static void stosq(void *d, long n) {
	__asm__ volatile("rep stosq" : "+D"(d), "+c"(n) : "a"(0L) : "memory");
}

__attribute__((noinline)) static long cmpsb(const char *x, const char *y, long n) {
	__asm__ volatile("repe cmpsb" : "+D"(x), "+S"(y), "+c"(n) : : "memory", "cc");
	return n;
}

__attribute__((noinline)) static long scasb(const char *s, char c, long n) {
	__asm__ volatile("repne scasb" : "+D"(s), "+c"(n) : "a"(c) : "memory", "cc");
	return n;
}

void _start(void) {
	for (int i = 0; i < 64; i++)
		a[i] = b[i] = (char)i, src[i] = (char)(i + 1);
	b[20] = 100;
	long r = 0;
	movsb(dst, src, 100);      /* 100 iterations */
	stosq(dst, 0);             /* none */
	r += cmpsb(a, b, 50);      /* 21: stops at the difference */
	r += cmpsb(a + 30, b + 30, 30); /* 30: all equal, runs out */
	r += scasb(src, 10, 40);   /* 10: finds src[9] */
	long status = r == 29 + 0 + 30 ? 0 : 1;
	__asm__ volatile("syscall" : : "a"(231L), "D"(status) : "rcx", "r11", "memory");
	__builtin_unreachable();
}

/*
 * A freestanding runtime for the test programs: no libc, raw system
 * calls, a _start that calls main(argc, argv, envp) and exits with its
 * result. The programs are static executables that reachvm run loads and
 * runs under the translator, and that also run natively.
 */
typedef unsigned long u64;

static inline long sys6(long nr, long a, long b, long c, long d, long e, long f) {
	long ret;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9) : "rcx", "r11", "memory");
	return ret;
}
#define sys3(nr, a, b, c) sys6(nr, (long)(a), (long)(b), (long)(c), 0, 0, 0)

static inline long rt_strlen(const char *s) {
	long n = 0;
	while (s[n])
		n++;
	return n;
}
static inline void puts_(const char *s) { sys3(1, 1, s, rt_strlen(s)); }
static inline void putn(long v) {
	char b[24];
	int i = 23;
	int neg = v < 0;
	u64 u = neg ? -(u64)v : (u64)v;
	b[i] = 0;
	do {
		b[--i] = '0' + u % 10;
		u /= 10;
	} while (u);
	if (neg)
		b[--i] = '-';
	puts_(b + i);
}
static inline void puthex(u64 v) {
	char b[20];
	int i = 19;
	b[i] = 0;
	do {
		b[--i] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v);
	b[--i] = 'x';
	b[--i] = '0';
	puts_(b + i);
}
static inline int streq(const char *a, const char *b) {
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}
static inline long atol_(const char *s) {
	long v = 0;
	int neg = *s == '-';
	if (neg)
		s++;
	while (*s >= '0' && *s <= '9')
		v = v * 10 + (*s++ - '0');
	return neg ? -v : v;
}
static inline u64 atohex(const char *s) {
	u64 v = 0;
	if (s[0] == '0' && s[1] == 'x')
		s += 2;
	for (; *s; s++)
		v = v * 16 + (*s <= '9' ? *s - '0' : (*s | 32) - 'a' + 10);
	return v;
}

int main(int argc, char **argv, char **envp);

__attribute__((used)) void start_c(long *sp) {
	int argc = (int)sp[0];
	char **argv = (char **)(sp + 1);
	char **envp = argv + argc + 1;
	sys3(231, main(argc, argv, envp), 0, 0);
	for (;;)
		;
}

__asm__(".globl _start\n_start:\n\txor %ebp, %ebp\n\tmov %rsp, %rdi\n\tand $-16, %rsp\n\tcall start_c\n\thlt\n");

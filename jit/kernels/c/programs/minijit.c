/* minijit: a small JIT. It writes 1,000 functions into an RWX region,
 * each `mov eax, c; add eax, edi; ret`, calls each (directly through a
 * pointer, and again through a generated dispatcher that calls them all),
 * then rewrites every other one to `mov eax, c'; imul eax, edi; ret` and
 * calls them all again. It prints checksums of the results, which any
 * stale translation of the old code changes.
 */
#include "rt.h"

#define N 1000
#define SLOT 16

typedef unsigned (*fn)(unsigned);

static void put32(unsigned char *p, unsigned v) {
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

/* add_fn writes `mov eax, c; add eax, edi; ret`. */
static void add_fn(unsigned char *p, unsigned c) {
	p[0] = 0xb8;
	put32(p + 1, c);
	p[5] = 0x01, p[6] = 0xf8; /* add eax, edi */
	p[7] = 0xc3;
}

/* mul_fn writes `mov eax, c; imul eax, edi; ret`. */
static void mul_fn(unsigned char *p, unsigned c) {
	p[0] = 0xb8;
	put32(p + 1, c);
	p[5] = 0x0f, p[6] = 0xaf, p[7] = 0xc7; /* imul eax, edi */
	p[8] = 0xc3;
}

/* dispatcher writes, at d, a function of x (edi) that calls every
 * function with x and returns the sum of the results:
 *
 *	push rbx; push rbp; mov ebp, edi; xor ebx, ebx
 *	N times: mov edi, ebp; call rel32 f_i; add ebx, eax
 *	mov eax, ebx; pop rbp; pop rbx; ret
 */
static void dispatcher(unsigned char *d, unsigned char *code) {
	unsigned char *p = d;
	*p++ = 0x53, *p++ = 0x55, *p++ = 0x89, *p++ = 0xfd, *p++ = 0x31, *p++ = 0xdb;
	for (int i = 0; i < N; i++) {
		*p++ = 0x89, *p++ = 0xef;
		*p++ = 0xe8;
		put32(p, (unsigned)(code + i * SLOT - (p + 4)));
		p += 4;
		*p++ = 0x01, *p++ = 0xc3;
	}
	*p++ = 0x89, *p++ = 0xd8, *p++ = 0x5d, *p++ = 0x5b, *p++ = 0xc3;
}

static u64 sweep(unsigned char *code) {
	u64 sum = 0;
	for (int i = 0; i < N; i++)
		sum = sum * 31 + ((fn)(code + i * SLOT))((unsigned)i);
	return sum;
}

int main(int argc, char **argv, char **envp) {
	u64 size = N * SLOT + 16 * N + 4096;
	unsigned char *code = rt_mmap(0, size, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (code == MAP_FAILED)
		return 3;
	unsigned char *disp = code + N * SLOT;
	for (int i = 0; i < N; i++)
		add_fn(code + i * SLOT, (unsigned)i * 2654435761u);
	dispatcher(disp, code);
	sayhex("checksum: ", sweep(code));
	sayhex("dispatcher: ", ((fn)disp)(12345));
	for (int i = 1; i < N; i += 2)
		mul_fn(code + i * SLOT, (unsigned)i * 40503u + 1);
	sayhex("checksum after rewriting half: ", sweep(code));
	sayhex("dispatcher: ", ((fn)disp)(12345));
	/* And back, for the even ones. */
	for (int i = 0; i < N; i += 2)
		mul_fn(code + i * SLOT, (unsigned)i + 3);
	sayhex("checksum after rewriting the other half: ", sweep(code));
	sayhex("dispatcher: ", ((fn)disp)(777));
	return 0;
}

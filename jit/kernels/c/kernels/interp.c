/* A switch interpreter: one indirect jump through a jump table per
 * bytecode (DynamoRIO's second worst, 1.57x). */
#include "kernels.h"

enum { PUSH, ADD, SUB, MUL, DUP, SWAP, JNZ, DEC, DROP, XOR, SHL, HALT };

static const u8 prog[] = {
	PUSH, 0,          /* acc */
	PUSH, 100,        /* counter */
	/* loop: stack acc counter */
	SWAP, PUSH, 3, MUL, PUSH, 7, ADD, PUSH, 5, XOR, PUSH, 1, SHL, PUSH, 2, SUB,
	SWAP, DEC, DUP, JNZ, 4,
	DROP, HALT,
};

static long run(long seed) {
	long stack[16];
	long sp = 0;
	long pc = 0;
	stack[0] = seed;
	for (;;) {
		switch (prog[pc++]) {
		case PUSH: stack[++sp] = prog[pc++]; break;
		case ADD: sp--; stack[sp] += stack[sp + 1]; break;
		case SUB: sp--; stack[sp] -= stack[sp + 1]; break;
		case MUL: sp--; stack[sp] *= stack[sp + 1]; break;
		case DUP: stack[sp + 1] = stack[sp]; sp++; break;
		case SWAP: { long t = stack[sp]; stack[sp] = stack[sp - 1]; stack[sp - 1] = t; break; }
		case JNZ: { long t = prog[pc++]; if (stack[sp--]) pc = t; break; }
		case DEC: stack[sp]--; break;
		case DROP: sp--; break;
		case XOR: sp--; stack[sp] ^= stack[sp + 1]; break;
		case SHL: sp--; stack[sp] = (long)((u64)stack[sp] << (stack[sp + 1] & 63)); break;
		case HALT: return stack[sp] + stack[0];
		}
	}
}

EXPORT long k_interp(long n) {
	long s = 0;
	for (long i = 0; i < n; i++)
		s = s * 31 + run(i);
	return s;
}

//go:build cgo && linux

package cgotest

/*
#include <stdint.h>

// add2 and add6 are the call benchmark's functions. noinline: a library's
// function is always called, never inlined into cgo's wrapper, and the
// baseline must pay for that call as the private call does.
__attribute__((noinline)) static long add2(long a, long b) { return a + b; }
__attribute__((noinline)) static long add6(long a, long b, long c, long d, long e, long f) { return a + b + c + d + e + f; }
static double scale(double x, int n) { return x * n; }

// store_after calls back (into Go, which may grow and so move the
// calling goroutine's stack) and then stores v through p: p must still
// point to the same object.
static uint64_t store_after(uint64_t *p, uint64_t v, uint64_t (*back)(uint64_t)) {
	uint64_t r = back(v);
	*p = v;
	return r + 1;
}

// sum14 weighs each argument by its position, so that a misplaced one
// shows: the sum of (i+1)*a_i.
static long sum14(long a1, long a2, long a3, long a4, long a5, long a6, long a7,
		long a8, long a9, long a10, long a11, long a12, long a13, long a14) {
	return a1 + 2*a2 + 3*a3 + 4*a4 + 5*a5 + 6*a6 + 7*a7 + 8*a8 + 9*a9 +
		10*a10 + 11*a11 + 12*a12 + 13*a13 + 14*a14;
}

// wait_flag spins until *flag is not zero and returns the iterations.
static uint64_t wait_flag(volatile uint64_t *flag) {
	uint64_t n = 0;
	while (*flag == 0) n++;
	return n;
}

// Narrow and floating-point types, for typed bindings.
static long widen(signed char a, unsigned char b, short c, unsigned short d, int e, unsigned int f) {
	return (long)a + (long)b + (long)c + (long)d + (long)e + (long)f;
}
static signed char neg8(signed char x) { return -x; }
static _Bool not(_Bool b) { return !b; }
static double mixf(float a, long b, double c) { return (double)a * (double)b + c; }
static float half(float x) { return x / 2; }
static char *ptr_add(char *p, long n) { return p + n; }

static uintptr_t addr_widen(void) { return (uintptr_t)widen; }
static uintptr_t addr_neg8(void) { return (uintptr_t)neg8; }
static uintptr_t addr_not(void) { return (uintptr_t)not; }
static uintptr_t addr_mixf(void) { return (uintptr_t)mixf; }
static uintptr_t addr_half(void) { return (uintptr_t)half; }
static uintptr_t addr_ptr_add(void) { return (uintptr_t)ptr_add; }
static uintptr_t addr_add2(void) { return (uintptr_t)add2; }
static uintptr_t addr_add6(void) { return (uintptr_t)add6; }
static uintptr_t addr_scale(void) { return (uintptr_t)scale; }
static uintptr_t addr_store_after(void) { return (uintptr_t)store_after; }
static uintptr_t addr_sum14(void) { return (uintptr_t)sum14; }
static uintptr_t addr_wait_flag(void) { return (uintptr_t)wait_flag; }
*/
import "C"

// Available reports whether the package was built with cgo.
const Available = true

// Addresses of the C functions, for private calls.
var (
	// Add2 is long add2(long a, long b): a + b.
	Add2 = uintptr(C.addr_add2())
	// Add6 is long add6(long a, ..., long f): the sum of its six
	// arguments.
	Add6 = uintptr(C.addr_add6())
	// Scale is double scale(double x, int n): x * n.
	Scale = uintptr(C.addr_scale())
	// StoreAfter is uint64_t store_after(uint64_t *p, uint64_t v,
	// uint64_t (*back)(uint64_t)): back(v), then *p = v; it returns
	// back(v) + 1.
	StoreAfter = uintptr(C.addr_store_after())
	// Sum14 is long sum14(long a1, ..., long a14): the sum of
	// i*a_i, i from 1.
	Sum14 = uintptr(C.addr_sum14())
	// Widen is long widen(signed char, unsigned char, short, unsigned
	// short, int, unsigned): the sum of its arguments, each widened as
	// its type says.
	Widen = uintptr(C.addr_widen())
	// Neg8 is signed char neg8(signed char x): -x.
	Neg8 = uintptr(C.addr_neg8())
	// Not is _Bool not(_Bool b): !b.
	Not = uintptr(C.addr_not())
	// MixF is double mixf(float a, long b, double c): a*b + c.
	MixF = uintptr(C.addr_mixf())
	// Half is float half(float x): x/2.
	Half = uintptr(C.addr_half())
	// PtrAdd is char *ptr_add(char *p, long n): p + n.
	PtrAdd = uintptr(C.addr_ptr_add())
	// WaitFlag is uint64_t wait_flag(volatile uint64_t *flag): it spins
	// until *flag is not zero.
	WaitFlag = uintptr(C.addr_wait_flag())
)

// CgoAdd2 is add2 called by cgo: the baseline.
func CgoAdd2(a, b int64) int64 { return int64(C.add2(C.long(a), C.long(b))) }

// CgoAdd6 is add6 called by cgo: the baseline.
func CgoAdd6(a, b, c, d, e, f int64) int64 {
	return int64(C.add6(C.long(a), C.long(b), C.long(c), C.long(d), C.long(e), C.long(f)))
}

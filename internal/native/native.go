package native

import "fmt"

// Argument limits of one call: the System V AMD64 ABI passes six integer
// and eight floating-point arguments in registers; the rest go on the
// stack, of which a Frame holds MaxStackArgs words.
const (
	IntRegs      = 6
	FloatRegs    = 8
	MaxStackArgs = 8
	// MaxArgs is the most integer arguments CallN takes.
	MaxArgs = IntRegs + MaxStackArgs
)

// Frame describes a call with any mix of integer, floating-point and
// stack arguments, and receives both results of each register class. Its
// layout is read by the trampoline through go_asm.h. A Frame is meant to
// be a local of the caller: Call does not let it escape.
type Frame struct {
	// Fn is the function's address.
	Fn uintptr
	// Ints go to RDI, RSI, RDX, RCX, R8, R9; Floats to XMM0-7 (the
	// low 32 bits for a float); Stack[:NStack] are pushed in order above
	// the return address.
	Ints   [IntRegs]uint64
	Floats [FloatRegs]uint64
	Stack  [MaxStackArgs]uint64
	NStack uint64
	// NFloat is the number of XMM registers used, which the call passes
	// in AL for variadic callees (printf).
	NFloat uint64
	// RAX and RDX, XMM0 and XMM1 are the results: the second register
	// of each class carries the upper half of a 128-bit or two-field
	// struct result.
	RAX, RDX   uint64
	XMM0, XMM1 uint64
}

// CallN calls fn with integer or pointer arguments, up to MaxArgs of
// them (the first IntRegs in registers, the rest on the stack), and
// returns RAX. It is for callers that take a variable number of
// arguments; Call0 to Call6 are faster and allocate nothing.
//
// Preconditions: len(args) <= MaxArgs; pointers among args follow the
// package's pointer rule (the caller's own entry point is
// //go:uintptrescapes).
func CallN(fn uintptr, args []uintptr) uintptr {
	switch len(args) {
	case 0:
		return Call0(fn)
	case 1:
		return Call1(fn, args[0])
	case 2:
		return Call2(fn, args[0], args[1])
	case 3:
		return Call3(fn, args[0], args[1], args[2])
	case 4:
		return Call4(fn, args[0], args[1], args[2], args[3])
	case 5:
		return Call5(fn, args[0], args[1], args[2], args[3], args[4])
	case 6:
		return Call6(fn, args[0], args[1], args[2], args[3], args[4], args[5])
	}
	if len(args) > MaxArgs {
		panic(TooManyArgs(len(args)))
	}
	fr := Frame{Fn: fn}
	for i, a := range args[:IntRegs] {
		fr.Ints[i] = uint64(a)
	}
	for i, a := range args[IntRegs:] {
		fr.Stack[i] = uint64(a)
	}
	fr.NStack = uint64(len(args) - IntRegs)
	fr.Call()
	return uintptr(fr.RAX)
}

// TooManyArgs is the error of a call with n integer arguments, more than
// MaxArgs.
type TooManyArgs int

func (n TooManyArgs) Error() string {
	return fmt.Sprintf("%d integer arguments, at most %d (%d in registers, %d on the stack)", int(n), MaxArgs, IntRegs, MaxStackArgs)
}

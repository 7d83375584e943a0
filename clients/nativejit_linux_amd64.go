package clients

import (
	"github.com/reachvm/reachvm/jit"
)

// This file turns a native client's insertion records into package
// jit's calls.

// addCell inserts before instruction i of b an add of n to the 64-bit
// cell, locked or not.
//
// Preconditions: cell is an aligned word of the client's image, n fits
// in 32 bits, 0 <= i < b.Len().
func (n *native) addCell(b blockSink, i int, cell uintptr, add int64, locked bool) {
	b.AddCell(i, cell, add, locked)
}

// cleanCall inserts before instruction i of b a call of fn with args,
// keeping the vector state around it if vector.
//
// Preconditions: fn is in the client's image, each argument's kind is
// one of the arg constants and a register argument's register is at
// most R15, 0 <= i < b.Len().
func (n *native) cleanCall(b blockSink, i int, fn uintptr, vector bool, args []cArg) {
	var buf [maxArgs]jit.Arg
	ja := buf[:len(args)]
	for j, a := range args {
		switch a.kind {
		case argConst:
			ja[j] = jit.ArgConst(a.value)
		case argReg:
			ja[j] = jit.ArgReg(jit.Reg(a.reg))
		case argPC:
			ja[j] = jit.ArgPC()
		case argEA:
			ja[j] = jit.ArgEA()
		case argCtx:
			ja[j] = jit.ArgContext()
		}
	}
	if vector {
		b.CleanCallVector(i, fn, ja...)
		return
	}
	b.CleanCall(i, fn, ja...)
}

// failer is a jit.Block that can be failed with an error of the
// client's.
type failer interface{ Fail(err error) }

// fail keeps err, the first of the client's errors, for Report, which
// returns it.
func (n *native) fail(err error) {
	n.mu.Lock()
	if n.eventErr == nil {
		n.eventErr = err
	}
	n.mu.Unlock()
}

// failBlock fails the translation of b with err. The jit's Block has no
// way to fail with a client's own error yet: an insertion the jit
// refuses (before an instruction past the block's end) fails it, and the
// client keeps err, which its Report returns, so that the run says why.
//
// A nil err fails b for the error the client has already (eventErr).
func (n *native) failBlock(b *jit.Block, err error) {
	if err == nil {
		n.mu.Lock()
		err = n.eventErr
		n.mu.Unlock()
	}
	if f, ok := any(b).(failer); ok {
		f.Fail(err)
		return
	}
	n.fail(err)
	b.AddCell(b.Len(), 0, 0, false)
}

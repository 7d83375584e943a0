package jit

import (
	"strconv"

	"github.com/reachvm/reachvm/jit/internal/amd64"
)

// Reg names one of the application's general registers, as clients
// read them (clean-call arguments, instruction operands). The numbers
// are the hardware's: RAX is 0, R15 is 15.
type Reg uint8

// The general registers.
const (
	RAX Reg = iota
	RCX
	RDX
	RBX
	RSP
	RBP
	RSI
	RDI
	R8
	R9
	R10
	R11
	R12
	R13
	R14
	R15
)

// String returns the register's 64-bit name ("rax"), or "reg(N)" for a
// number past R15.
func (r Reg) String() string {
	if r <= R15 {
		return r.hw().String()
	}
	return "reg(" + strconv.Itoa(int(r)) + ")"
}

// hw returns the register as the assembler numbers it: the same number.
func (r Reg) hw() amd64.Reg { return amd64.Reg(r) }

package jit

import (
	"fmt"
	"sync"

	"github.com/reachvm/reachvm/vmcode"
	"github.com/reachvm/reachvm/vmm"
)

var (
	defaultOnce sync.Once
	defaultM    *Machine
	defaultErr  error
)

// DefaultVMCodeSize is the vmcode the default machine of Run reserves,
// at DefaultVMCodeBase if it is free (else where the OS chooses).
const DefaultVMCodeSize = 256 << 20

// DefaultVMCodeBase is DynamoRIO's default vm_base on Linux: vmcode below
// 2 GiB, where application code, the cache and the indirect-branch table
// all have 32-bit addresses, which makes the translator's inline caches
// compare in one instruction and its table lookup take no register.
const DefaultVMCodeBase = 0x3f000000

// Run runs the function at fn under the translator on a process-wide
// default Machine, with integer or pointer arguments, and returns what
// the native call returns (as Call does). The default machine has its own
// VMM; code in another VMM's vmcode (a library privload placed) runs with
// its RIP-relative operands re-encoded when they are in reach of the
// cache and mangled when not, so for speed, run such code on a Machine
// made with NewMachine over the library's own vmcode.
//
// Run panics if the machine cannot be made or the run fails (an
// unsupported instruction or system call, a jump to non-code, an exit):
// Machine.Run returns those as errors.
//
//go:uintptrescapes
func Run(fn uintptr, args ...uintptr) uintptr {
	defaultOnce.Do(func() {
		v, err := vmm.New(vmm.Config{VMCodeBase: DefaultVMCodeBase, AllowElsewhere: true, VMCodeSize: DefaultVMCodeSize, VMHeapSize: 1 << 30})
		if err != nil {
			defaultErr = err
			return
		}
		if defaultM, err = NewMachine(vmcode.New(v), nil); err != nil {
			defaultErr = err
			_ = v.Close()
		}
	})
	if defaultErr != nil {
		panic(fmt.Sprintf("jit: making the default machine: %v", defaultErr))
	}
	r, err := defaultM.Run(fn, args...)
	if err != nil {
		panic(err)
	}
	return r
}

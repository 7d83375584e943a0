//go:build linux && amd64

// Command outside uses reachvm's public API from another module, end to
// end, as a user's program would: a VMM, a slot committed and protected,
// vmcode units, a jit call stub, a system library loaded privately and
// called, and aspacem's sync check against the kernel. It prints one line
// per step and exits non-zero on the first failure.
// internal/layers' TestOutsideModule runs it.
package main

import (
	"fmt"
	"os"
	"unsafe"

	"github.com/reachvm/reachvm/aspacem"
	"github.com/reachvm/reachvm/jit"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/privload"
	"github.com/reachvm/reachvm/vmcode"
	"github.com/reachvm/reachvm/vmm"
)

// zlib is the system library loaded privately; compressBound(n) is
// n + n>>12 + n>>14 + n>>25 + 13 in every zlib since 1.2.
const zlib = "libz.so.1"

func compressBound(n uintptr) uintptr { return n + n>>12 + n>>14 + n>>25 + 13 }

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "outside:", err)
		os.Exit(1)
	}
}

// syncCheck fails if aspacem's record of what v owns differs from the
// kernel's maps.
func syncCheck(v *vmm.VMM, when string) error {
	mism, err := v.Space().SyncCheck(v.OS())
	if err != nil {
		return fmt.Errorf("%s: sync check: %w", when, err)
	}
	if len(mism) > 0 {
		return fmt.Errorf("%s: aspacem and the kernel differ: %v", when, mism)
	}
	fmt.Printf("sync check %s: ok\n", when)
	return nil
}

func run() error {
	v, err := vmm.New(vmm.Config{VMCodeSize: 64 << 20})
	if err != nil {
		return fmt.Errorf("vmm.New: %w", err)
	}
	defer v.Close()
	base, size := v.VMCode()
	fmt.Printf("vmcode: %d MiB, reaches its own end: %t\n", size>>20, v.ReachesAll(base+size-1))

	// A slot: commit a page read-write, write it, make it read-only and
	// executable.
	slot, err := v.ReserveSlot(64<<10, "outside")
	if err != nil {
		return fmt.Errorf("ReserveSlot: %w", err)
	}
	page := slot.Base()
	if err := slot.Commit(page, mem.PageSize, mem.ProtRW); err != nil {
		return fmt.Errorf("Commit: %w", err)
	}
	w, ok := v.Writable(page)
	if !ok {
		return fmt.Errorf("Writable(%#x): not in vmcode", page)
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(w)), mem.PageSize)
	b[0], b[mem.PageSize-1] = 0xc3, 0xcc
	if err := slot.Protect(page, mem.PageSize, mem.ProtRX); err != nil {
		return fmt.Errorf("Protect: %w", err)
	}
	got := unsafe.Slice((*byte)(unsafe.Pointer(page)), mem.PageSize)
	fmt.Printf("slot: committed, written and protected rx: %#x %#x\n", got[0], got[mem.PageSize-1])
	if err := syncCheck(v, "after the slot"); err != nil {
		return err
	}

	// A system library, loaded privately into vmcode and called.
	lib, err := privload.Load(v, zlib, privload.Options{})
	if err != nil {
		return fmt.Errorf("privload.Load: %w", err)
	}
	fmt.Printf("libz: loaded inside vmcode: %t\n", v.InVMCode(lib.Base(), lib.Size()))
	bound, err := lib.Func("compressBound")
	if err != nil {
		return fmt.Errorf("Func: %w", err)
	}
	r, err := bound.Call(1000)
	if err != nil {
		return fmt.Errorf("compressBound: %w", err)
	}
	fmt.Printf("compressBound(1000) = %d, want %d\n", r, compressBound(1000))

	// vmcode units and a jit call stub that forwards to the library.
	code := vmcode.New(v)
	stub, err := jit.EmitCallStub(code, bound.Addr())
	if err != nil {
		return fmt.Errorf("EmitCallStub: %w", err)
	}
	fmt.Printf("stub: inside vmcode: %t, reaches compressBound: %t\n",
		v.InVMCode(stub.Addr, uintptr(len(stub.Code))), mem.Reachable(stub.Addr+uintptr(stub.CallOffset)+5, bound.Addr()))
	r = jit.Call(stub.Addr, 1<<20)
	fmt.Printf("stub(1<<20) = %d, want %d\n", r, compressBound(1<<20))
	if err := syncCheck(v, "after the library and the stub"); err != nil {
		return err
	}

	// Give everything back; the map must still agree with the kernel.
	if err := stub.Free(); err != nil {
		return fmt.Errorf("stub.Free: %w", err)
	}
	if err := lib.Close(); err != nil {
		return fmt.Errorf("lib.Close: %w", err)
	}
	if err := slot.Release(); err != nil {
		return fmt.Errorf("slot.Release: %w", err)
	}
	if err := syncCheck(v, "after release"); err != nil {
		return err
	}
	var _ *aspacem.Map = v.Space()
	return v.Close()
}

package jit_test

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"testing"

	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/jit"
	"github.com/reachvm/reachvm/jit/internal/amd64"
	"github.com/reachvm/reachvm/vmcode"
	"github.com/reachvm/reachvm/vmm"
)

// argRegs are the first two integer argument registers of the platform's
// C ABI: System V (rdi, rsi) or Windows x64 (rcx, rdx).
var argRegs = func() [2]amd64.Reg {
	if runtime.GOOS == "windows" {
		return [2]amd64.Reg{amd64.RCX, amd64.RDX}
	}
	return [2]amd64.Reg{amd64.RDI, amd64.RSI}
}()

// emitAdd emits `long add(long a, long b)` into vmcode and returns its
// address.
func emitAdd(t testing.TB, c *vmcode.Code) uintptr {
	u, err := c.Alloc(16)
	if err != nil {
		t.Fatal(err)
	}
	a := amd64.NewAssembler(u.Exec())
	a.MovRR(amd64.RAX, argRegs[0])
	a.AddRR(amd64.RAX, argRegs[1])
	a.Ret()
	if err := u.Write(0, a.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := u.Seal(); err != nil {
		t.Fatal(err)
	}
	return u.Exec()
}

// TestCallStub emits a stub calling a function with rel32, with W^X on
// and off: the displacement is relative to the executable address, both
// views hold the code, and the stub runs.
func TestCallStub(t *testing.T) {
	for _, wx := range []vmm.WXMode{vmm.WXOn, vmm.WXOff} {
		t.Run("wx="+wx.String(), func(t *testing.T) {
			v, err := vmm.New(vmm.Config{VMCodeSize: 64 << 20, NoVMHeap: true, WX: wx})
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			c := vmcode.New(v)
			add := emitAdd(t, c)
			stub, err := jit.EmitCallStub(c, add)
			if err != nil {
				t.Fatal(err)
			}
			if (stub.Writable != stub.Addr) != (wx == vmm.WXOn) {
				t.Fatalf("W^X %v: stub at %#x written at %#x", wx, stub.Addr, stub.Writable)
			}
			for _, at := range []uintptr{stub.Addr, stub.Writable} {
				if got := rawmem.Bytes(at, uintptr(len(stub.Code))); !bytes.Equal(got, stub.Code) {
					t.Fatalf("%#x holds % x, want % x", at, got, stub.Code)
				}
			}
			call := stub.Code[stub.CallOffset:]
			if call[0] != 0xe8 {
				t.Fatalf("stub calls with %#x, want e8 rel32", call[0])
			}
			rel := int32(uint32(call[1]) | uint32(call[2])<<8 | uint32(call[3])<<16 | uint32(call[4])<<24)
			if got := stub.Addr + uintptr(stub.CallOffset) + 5 + uintptr(int64(rel)); got != add {
				t.Fatalf("rel32 %#x targets %#x, want %#x", rel, got, add)
			}
			for _, tc := range [][2]int64{{1, 2}, {-5, 3}, {1 << 40, 1 << 40}} {
				if got := int64(jit.Call(stub.Addr, uintptr(tc[0]), uintptr(tc[1]))); got != tc[0]+tc[1] {
					t.Errorf("stub(%d, %d) = %d", tc[0], tc[1], got)
				}
			}
			if err := stub.Free(); err != nil {
				t.Fatal(err)
			}
			if mism, err := v.Space().SyncCheck(v.OS()); err != nil || len(mism) != 0 {
				t.Fatalf("SyncCheck: %v %v", err, mism)
			}
		})
	}
}

// TestCallStubOutOfReach asks for a stub to a target 3 GiB away: it must
// be refused with a ReachError and the unit returned, never emitted with a
// truncated displacement.
func TestCallStubOutOfReach(t *testing.T) {
	v, err := vmm.New(vmm.Config{VMCodeSize: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	free := v.FreeVMCode()
	base, _ := v.VMCode()
	_, err = jit.EmitCallStub(vmcode.New(v), base+3<<30)
	var re *amd64.ReachError
	if !errors.As(err, &re) {
		t.Fatalf("got %v, want *amd64.ReachError", err)
	}
	if v.FreeVMCode() != free {
		t.Fatalf("the refused stub kept %#x bytes of vmcode", free-v.FreeVMCode())
	}
}

// BenchmarkCallStub measures a call from Go through the cgocall-style
// path into a stub that calls a two-instruction function with rel32;
// BenchmarkCallDirect calls the function itself, the baseline.
func BenchmarkCallStub(b *testing.B) {
	v, err := vmm.New(vmm.Config{VMCodeSize: 16 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer v.Close()
	c := vmcode.New(v)
	stub, err := jit.EmitCallStub(c, emitAdd(b, c))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		jit.Call(stub.Addr, 1, 2)
	}
}

func BenchmarkCallDirect(b *testing.B) {
	v, err := vmm.New(vmm.Config{VMCodeSize: 16 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer v.Close()
	add := emitAdd(b, vmcode.New(v))
	for b.Loop() {
		jit.Call(add, 1, 2)
	}
}

// Example emits a function and a stub that calls it with a rel32 call,
// both in vmcode, and runs the stub.
func Example() {
	v, err := vmm.New(vmm.Config{VMCodeSize: 16 << 20})
	if err != nil {
		panic(err)
	}
	defer v.Close()
	c := vmcode.New(v)
	u, _ := c.Alloc(16)
	a := amd64.NewAssembler(u.Exec())
	a.MovRR(amd64.RAX, argRegs[0])
	a.AddRR(amd64.RAX, argRegs[1])
	a.Ret()
	u.Write(0, a.Bytes())
	u.Seal()
	stub, err := jit.EmitCallStub(c, u.Exec())
	if err != nil {
		panic(err)
	}
	fmt.Printf("call opcode %#x, result %d\n", stub.Code[stub.CallOffset], jit.Call(stub.Addr, 40, 2))
	// Output: call opcode 0xe8, result 42
}

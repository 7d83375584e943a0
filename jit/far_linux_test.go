//go:build linux && amd64

package jit

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"testing"

	"github.com/reachvm/reachvm/jit/internal/decode"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/privload"
	"github.com/reachvm/reachvm/vmcode"
	"github.com/reachvm/reachvm/vmm"
)

// checkCache decodes every fragment of m and checks the shape of what the
// translator emits:
//
//   - every direct branch (links, exits, the jumps to fcache_return and to
//     the lookup's miss) is a rel32 jmp or jcc, or a rel8 or jrcxz inside
//     the fragment, and targets code inside the machine's own vmcode;
//   - nothing calls: there is no call instruction at all (calls are
//     translated to a push and a jump, and the translator makes no client
//     calls), no return and no syscall (both translated);
//   - the only indirect jumps are the table lookup's jmp [rcx+rax*8] (or
//     jmp [rax*8+table] with the table below 2 GiB);
//   - every RIP-relative operand targets the machine's vmcode when far
//     is set (the application's data is then out of reach, so every
//     operand of the application's must have been mangled), and is in
//     rel32 reach in any case.
//
// It returns the number of instructions checked.
func checkCache(t testing.TB, m *Machine, far bool) int {
	t.Helper()
	base, size := m.v.VMCode()
	inVM := func(a uintptr) bool { return a >= base && a-base < size }
	n := 0
	for _, f := range m.frags {
		code := f.unit.bytes(f.entry, uintptr(f.codeLen))
		var in decode.Inst
		for off := 0; off < len(code); off += int(in.Len) {
			pc := f.entry + uintptr(off)
			if err := decode.DecodeInto(code[off:], &in); err != nil {
				t.Fatalf("fragment %#x at %#x: %v", f.tag, pc, err)
			}
			b := code[off : off+int(in.Len)]
			next := pc + uintptr(in.Len)
			n++
			where := func() string { return fmt.Sprintf("fragment %#x (tag %#x) at %#x: % x", f.entry, f.tag, pc, b) }
			switch in.Kind {
			case decode.JmpRel, decode.JccRel, decode.LoopRel:
				target := next + uintptr(int64(in.Rel))
				if in.ImmLen == 1 {
					if target < f.entry || target >= f.entry+uintptr(f.codeLen) {
						t.Errorf("%s: a rel8 branch leaves its fragment for %#x", where(), target)
					}
				} else if !inVM(target) {
					t.Errorf("%s: rel32 branch to %#x, outside vmcode", where(), target)
				}
			case decode.CallRel, decode.CallInd:
				t.Errorf("%s: a call in the cache", where())
			case decode.Ret, decode.Syscall:
				t.Errorf("%s: an untranslated %v", where(), in.Kind)
			case decode.JmpInd:
				// jmp [rcx+rax*8] (FF 24 C1), or jmp [rax*8+table]
				// (FF 24 C5) with the table below 2 GiB.
				if !(in.ModRM == 0x24 && (b[in.ModRMOff+1] == 0xc1 || b[in.ModRMOff+1] == 0xc5)) {
					t.Errorf("%s: an indirect jump other than the table lookup's", where())
				}
			}
			if in.RIPRelative() {
				target := next + uintptr(int64(int32(binary.LittleEndian.Uint32(b[in.DispOff:]))))
				if far && !inVM(target) {
					t.Errorf("%s: RIP-relative operand to %#x, outside vmcode: not mangled", where(), target)
				}
			}
		}
	}
	return n
}

// farVMM places a VMM's vmcode at least 8 GiB from every address in
// near, so that nothing in near is in rel32 reach of it.
func farVMM(t testing.TB, near ...uintptr) *vmm.VMM {
	t.Helper()
	lo, hi := near[0], near[0]
	for _, a := range near {
		lo, hi = min(lo, a), max(hi, a)
	}
	const gap = 8 << 30
	var cands []uintptr
	if lo > gap+1<<32 {
		cands = append(cands, mem.AlignDown(lo-gap, 1<<30), mem.AlignDown(lo-2*gap, 1<<30))
	}
	cands = append(cands, mem.AlignDown(hi+gap, 1<<30), mem.AlignDown(hi+2*gap, 1<<30), 0x100000000)
	for _, c := range cands {
		dist := func(a uintptr) uintptr {
			if a > c {
				return a - c
			}
			return c - a
		}
		ok := true
		for _, a := range near {
			if dist(a) < 4<<30 {
				ok = false
			}
		}
		if !ok {
			continue
		}
		v, err := vmm.New(vmm.Config{VMCodeBase: c, VMCodeSize: 64 << 20, VMHeapSize: 64 << 20})
		if err == nil {
			t.Cleanup(func() { v.Close() })
			return v
		}
	}
	t.Skip("no free address range far from the code")
	return nil
}

// TestFarCache runs the kernels and libz with the cache placed far (8 GiB
// and more) from both the kernels' library and the host's libc, on
// purpose: every RIP-relative operand of theirs is then out of reach of
// the cache and must be mangled through a scratch register; results must
// still equal the native calls', and the emitted code must pass
// checkCache with far set.
func TestFarCache(t *testing.T) {
	v1, err := vmm.New(vmm.Config{VMCodeSize: 64 << 20, VMHeapSize: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last-registered first: the libraries close before
	// their VMM does.
	t.Cleanup(func() { v1.Close() })
	lib := loadKernels(t, v1)
	zlib := loadZlib(t, v1)
	libcFn := zlibImport(t, zlib, "memcpy")
	v2 := farVMM(t, lib.Base(), zlib.Base(), libcFn)
	m, err := NewMachine(vmcode.New(v2), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	base, _ := v2.VMCode()
	t.Logf("kernels at %#x, libz at %#x, libc's memcpy at %#x, cache at %#x", lib.Base(), zlib.Base(), libcFn, base)
	runKernels(t, m, lib, "translated far", nil)
	// libz's crc32 and the host libc it calls, far too.
	buf := make([]byte, 100000)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	crc := lookup(t, zlib, "crc32")
	want := Call(crc, 0, ptr(buf), uintptr(len(buf)))
	if got, err := m.Run(crc, 0, ptr(buf), uintptr(len(buf))); err != nil || got != want {
		t.Errorf("crc32 far: %#x, %v; native %#x", got, err, want)
	}
	runtime.KeepAlive(buf)
	st := m.Stats()
	if st.Mangled == 0 {
		t.Error("no RIP-relative operand was mangled")
	}
	n := checkCache(t, m, true)
	t.Logf("%d emitted instructions checked; %+v", n, st)
}

// TestCacheShape runs the kernels with the cache near them and checks the
// emitted code: direct branches rel32 inside vmcode, no calls, returns
// or syscalls, only the table's indirect jumps; and no operand mangled,
// since everything is in reach.
func TestCacheShape(t *testing.T) {
	for _, p := range placements {
		t.Run(p.name, func(t *testing.T) { testCacheShape(t, p.cfg) })
	}
}

func testCacheShape(t *testing.T, cfg vmm.Config) {
	m, _ := newTestMachine(t, cfg, nil)
	lib := loadKernels(t, m.v)
	for _, k := range kernels {
		if k.need != nil && !k.need() {
			continue
		}
		if _, err := m.Run(lookup(t, lib, k.name), k.args...); err != nil {
			t.Fatal(err)
		}
	}
	n := checkCache(t, m, false)
	if st := m.Stats(); st.Mangled != 0 {
		t.Errorf("%d operands mangled with everything in reach", st.Mangled)
	}
	base, _ := m.v.VMCode()
	t.Logf("vmcode at %#x: %d emitted instructions checked", base, n)
}

// zlibImport returns the address an import of lib was bound to.
func zlibImport(t testing.TB, lib *privload.Library, name string) uintptr {
	t.Helper()
	for _, im := range lib.Imports() {
		if im.Name == name {
			return im.BoundTo
		}
	}
	t.Fatalf("%s imports no %s", lib.Name(), name)
	return 0
}

//go:build linux && amd64

package jit

import (
	"encoding/binary"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmcode"
	"github.com/reachvm/reachvm/vmm"
	"github.com/reachvm/reachvm/vmm/vmmtest"
)

// smcCode is a test layout in two pages of application memory: page 0
// holds caller, read-execute; page 1, read-write-execute, holds three
// functions B, C and D, 16 bytes apart. caller(C) calls B directly, C
// through an indirect call, D through an indirect jump (which returns to
// caller by a ret), each with rcx set and the carry flag set, and returns
// B+C+D: every way into a fragment (a direct link, an inline-cache slot of
// a call site, of a jump site, of a return site, the table).
//
// The functions alternate between two versions: odd ones overwrite rcx
// and the flags before reading them (so that the inline-cache slots that
// learn them leave out their restores), even ones read both (adc eax,
// ecx; C reads only rcx unless strict: across a call the flags are dead
// by the psABI).
type smcCode struct {
	base   uintptr
	r      mem.Range
	strict bool
}

// smcFuncs returns version n of B, C and D, 16 bytes each.
func smcFuncs(n uint32, strict bool) []byte {
	b := make([]byte, 48)
	for i, imm := range [3]uint32{n, 10 * n, 100 * n} {
		f := b[16*i:]
		if n%2 == 1 {
			// xor eax, eax; mov ecx, imm; add eax, ecx; ret
			copy(f, []byte{0x31, 0xc0, 0xb9, 0, 0, 0, 0, 0x01, 0xc8, 0xc3})
			binary.LittleEndian.PutUint32(f[3:], imm)
			continue
		}
		// mov eax, imm; adc eax, ecx (add for C unless strict); ret
		copy(f, []byte{0xb8, 0, 0, 0, 0, 0x11, 0xc8, 0xc3})
		if i == 1 && !strict {
			f[5] = 0x01
		}
		binary.LittleEndian.PutUint32(f[1:], imm)
	}
	return b
}

// want returns caller's result with version n.
func (c *smcCode) want(n uint32) uintptr {
	if n%2 == 1 {
		return uintptr(111 * n)
	}
	carry := uint32(2)
	if c.strict {
		carry = 3
	}
	return uintptr(111*n + 6000 + carry)
}

// caller's code; B is at 4096 from it.
func smcCaller() []byte {
	c := []byte{
		0x53,             // push rbx
		0x48, 0x89, 0xfb, // mov rbx, rdi
		0xb9, 0xe8, 0x03, 0, 0, // mov ecx, 1000
		0xf9,             // stc
		0xe8, 0, 0, 0, 0, // call B
		0x50,                   // push rax
		0xb9, 0xd0, 0x07, 0, 0, // mov ecx, 2000
		0xf9,       // stc
		0xff, 0xd3, // call rbx
		0x59,       // pop rcx
		0x01, 0xc8, // add eax, ecx
		0x50,                         // push rax
		0x48, 0x8d, 0x0d, 0, 0, 0, 0, // lea rcx, [rip+L]
		0x51,                   // push rcx
		0x48, 0x8d, 0x43, 0x10, // lea rax, [rbx+16]
		0xb9, 0xb8, 0x0b, 0, 0, // mov ecx, 3000
		0xf9,       // stc
		0xff, 0xe0, // jmp rax
		0x59,       // L: pop rcx
		0x01, 0xc8, // add eax, ecx
		0x5b, // pop rbx
		0xc3, // ret
	}
	binary.LittleEndian.PutUint32(c[11:], uint32(4096-15))
	binary.LittleEndian.PutUint32(c[31:], uint32(48-35))
	return c
}

// newSMCCode maps the layout at one of addrs (0: anywhere) and writes
// version 1 of the functions.
func newSMCCode(t *testing.T, v *vmm.VMM, strict bool, addrs ...uintptr) *smcCode {
	t.Helper()
	var r mem.Range
	var err error
	for _, a := range addrs {
		mode := mem.Exact
		if a == 0 {
			mode = mem.Hint
		}
		if r, err = v.MapAppAnon(a, 2*mem.PageSize, mem.ProtRWX, mode, "smc test"); err == nil {
			break
		}
	}
	if err != nil {
		t.Skipf("no room for the test code at %#x: %v", addrs, err)
	}
	c := &smcCode{base: r.Start, r: r, strict: strict}
	putCode(r.Start, smcCaller())
	if err := v.ProtectApp(mem.Range{Start: r.Start, End: r.Start + mem.PageSize}, mem.ProtRX); err != nil {
		t.Fatal(err)
	}
	c.write(1)
	t.Cleanup(func() { v.ReleaseApp(r) })
	return c
}

// putCode writes b at a byte by byte: a copy into rawmem's slice crashes
// go1.26.8's compiler (disjointTypes in isInlinableMemmove).
func putCode(a uintptr, b []byte) {
	dst := rawmem.Bytes(a, uintptr(len(b)))
	for i, x := range b {
		dst[i] = x
	}
}

func (c *smcCode) fns() uintptr { return c.base + mem.PageSize }

// write writes version n of B, C and D (the page must be writable).
func (c *smcCode) write(n uint32) { putCode(c.fns(), smcFuncs(n, c.strict)) }

// runSMC runs caller three times and checks its result.
func runSMC(t *testing.T, m *Machine, c *smcCode, n uint32) {
	t.Helper()
	for i := range 3 {
		got, err := m.Run(c.base, c.fns()+16)
		if err != nil {
			t.Fatal(err)
		}
		if want := c.want(n); got != want {
			t.Fatalf("version %d, run %d: got %d, want %d", n, i, got, want)
		}
	}
}

// protOf returns the protection aspacem records at a.
func protOf(t *testing.T, v *vmm.VMM, a uintptr) mem.Prot {
	t.Helper()
	s, ok := v.Space().Lookup(a)
	if !ok {
		t.Fatalf("nothing recorded at %#x", a)
	}
	return s.Prot
}

// TestCodeWritten runs code from a read-write-execute page of application
// memory, which the translation write-protects (aspacem and the kernel
// agree), then reports a write to it as the signal layer would
// (codeWritten): the page gets its protection back, every fragment read
// from it is deleted and unlinked, while the caller's, on the other page,
// stays; the code, rewritten, runs as written. Every form of indirect
// branch site (cmp, narrow with the code below 2 GiB, wide above; strict
// flags; none: the table), basic blocks and superblocks, and the
// alternative of flushing everything.
func TestCodeWritten(t *testing.T) {
	low := []uintptr{0x50000000, 0x58000000, 0x68000000, 0x78000000}
	for _, place := range []struct {
		name  string
		addrs []uintptr
	}{{"low", low}, {"high", []uintptr{0}}} {
		for _, o := range []struct {
			name  string
			opts  Options
			whole bool
		}{
			{"default", Options{}, false},
			{"blocks", Options{MaxBlocks: 1}, false},
			{"strict", Options{MaxBlocks: 1, StrictFlags: true}, false},
			{"table", Options{MaxBlocks: 1, InlineCache: -1, CallInlineCache: -1}, false},
			{"whole", Options{MaxBlocks: 1}, true},
		} {
			t.Run(place.name+"/"+o.name, func(t *testing.T) {
				m, _ := newTestMachine(t, vmm.Config{AllowElsewhere: true}, &o.opts)
				m.wholeFlush = o.whole
				c := newSMCCode(t, m.v, o.opts.StrictFlags, place.addrs...)
				runSMC(t, m, c, 1)
				if p := protOf(t, m.v, c.fns()); p != mem.ProtRX {
					t.Fatalf("code page %v after the run, want %v (write-protected)", p, mem.ProtRX)
				}
				vmmtest.SyncCheck(t, m.v, "after write-protecting")
				before := m.Stats()
				callerFrag := m.frags[c.base]
				for n := uint32(2); n <= 4; n++ {
					m.mu.Lock()
					if m.codeWritten(c.base + 8) {
						t.Error("codeWritten on the caller's page, which is not write-protected")
					}
					ok := m.codeWritten(c.fns() + 100)
					// No fault to resume from here.
					m.oneShot = false
					m.mu.Unlock()
					if !ok {
						t.Fatal("codeWritten on the write-protected page returned false")
					}
					if p := protOf(t, m.v, c.fns()); p != mem.ProtRWX {
						t.Fatalf("code page %v after codeWritten, want %v", p, mem.ProtRWX)
					}
					for tag := range m.frags {
						if pageOf(tag) == c.fns() {
							t.Fatalf("a fragment of %#x is left after codeWritten", tag)
						}
					}
					c.write(n)
					runSMC(t, m, c, n)
				}
				st := m.Stats()
				vmmtest.SyncCheck(t, m.v, "after the rewrites")
				t.Logf("%+v", st)
				if st.CodeWrites-before.CodeWrites != 3 {
					t.Errorf("%d code writes counted, want 3", st.CodeWrites-before.CodeWrites)
				}
				if o.whole {
					if st.Flushes-before.Flushes != 3 {
						t.Errorf("%d flushes, want 3", st.Flushes-before.Flushes)
					}
					return
				}
				if st.Flushes != 0 || st.Invalidated == 0 {
					t.Errorf("flushes %d, fragments deleted %d: want 0 and some", st.Flushes, st.Invalidated)
				}
				if o.opts.MaxBlocks == 1 && m.frags[c.base] != callerFrag {
					t.Errorf("the caller's fragment, on the other page, was translated again")
				}
			})
		}
	}
}

// TestCodeWrittenTransient: after codeWritten the next fragment is a
// transient one of the faulting instruction alone, kept nowhere and
// write-protecting nothing, so that an instruction writing its own page
// completes; the one after is an ordinary fragment again.
func TestCodeWrittenTransient(t *testing.T) {
	m, _ := newTestMachine(t, vmm.Config{AllowElsewhere: true}, nil)
	c := newSMCCode(t, m.v, false, 0)
	runSMC(t, m, c, 1)
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.codeWritten(c.fns()) {
		t.Fatal("codeWritten returned false")
	}
	f, err := m.fragmentFor(c.fns())
	if err != nil {
		t.Fatal(err)
	}
	if !f.dead || f.instrs != 1 || m.frags[c.fns()] != nil {
		t.Fatalf("fragment after codeWritten: dead %v, %d instructions, registered %v: want a transient one of 1", f.dead, f.instrs, m.frags[c.fns()] != nil)
	}
	if m.pages.get(c.fns()) != nil || protOf(t, m.v, c.fns()) != mem.ProtRWX {
		t.Fatal("the transient fragment write-protected its page")
	}
	g, err := m.fragmentFor(c.fns())
	if err != nil {
		t.Fatal(err)
	}
	if g.dead || m.frags[c.fns()] != g || protOf(t, m.v, c.fns()) != mem.ProtRX {
		t.Fatal("the fragment after the transient one is not an ordinary one")
	}
	if m.codeWritten(c.base + 3*mem.PageSize) {
		t.Error("codeWritten outside any code page returned true")
	}
}

// syscallCode maps, outside application memory, a function that makes
// system call nr with its three arguments and returns the result.
func syscallCode(t *testing.T, nr uint32) uintptr {
	t.Helper()
	b, err := unix.Mmap(-1, 0, mem.PageSize, unix.PROT_READ|unix.PROT_WRITE|unix.PROT_EXEC, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(b) })
	code := []byte{0xb8, 0, 0, 0, 0, 0x0f, 0x05, 0xc3} // mov eax, nr; syscall; ret
	binary.LittleEndian.PutUint32(code[1:], nr)
	for i, x := range code {
		b[i] = x
	}
	return uintptr(unsafe.Pointer(&b[0]))
}

// TestCodeSyscallWrites: system calls the application makes write into a
// write-protected code page: read (whose buffer is made writable before
// the call) and clock_gettime (which fails with EFAULT and is made
// again). Both succeed, as natively, and read's new code runs.
func TestCodeSyscallWrites(t *testing.T) {
	m, _ := newTestMachine(t, vmm.Config{AllowElsewhere: true}, nil)
	c := newSMCCode(t, m.v, false, 0)
	runSMC(t, m, c, 1)
	read, clock := syscallCode(t, unix.SYS_READ), syscallCode(t, unix.SYS_CLOCK_GETTIME)

	var p [2]int
	if err := unix.Pipe(p[:]); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	// Version 5 of the three functions, through the pipe.
	buf := smcFuncs(5, false)
	if _, err := unix.Write(p[1], buf); err != nil {
		t.Fatal(err)
	}
	got, err := m.Run(read, uintptr(p[0]), c.fns(), 48)
	if err != nil || got != 48 {
		t.Fatalf("read into the code page: %d, %v; want 48", int64(got), err)
	}
	runSMC(t, m, c, 5)

	got, err = m.Run(clock, unix.CLOCK_MONOTONIC, c.fns()+2048)
	if err != nil || got != 0 {
		t.Fatalf("clock_gettime into the code page: %d, %v; want 0", int64(got), err)
	}
	if st := m.Stats(); st.CodeWrites != 2 {
		t.Errorf("%d code writes, want 2", st.CodeWrites)
	}
	runSMC(t, m, c, 5)
	// A genuine EFAULT stays one.
	got, _ = m.Run(clock, unix.CLOCK_MONOTONIC, 8)
	if int64(got) != -int64(unix.EFAULT) {
		t.Errorf("clock_gettime at 8: %d, want -EFAULT", int64(got))
	}
	vmmtest.SyncCheck(t, m.v, "after the system calls")
}

// TestCodeUnmapped: in library mode the application's munmap and
// mprotect go to the kernel; code it unmapped and mapped again, or
// reprotected and rewrote, runs as it is now.
func TestCodeUnmapped(t *testing.T) {
	m, _ := newTestMachine(t, vmm.Config{AllowElsewhere: true}, nil)
	munmap, mprotect := syscallCode(t, unix.SYS_MUNMAP), syscallCode(t, unix.SYS_MPROTECT)
	b, err := unix.Mmap(-1, 0, mem.PageSize, unix.PROT_READ|unix.PROT_WRITE|unix.PROT_EXEC, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		t.Fatal(err)
	}
	at := unsafe.Pointer(&b[0])
	fn := uintptr(at)
	put := func(v uint32) {
		code := rawmem.Bytes(fn, 6)
		code[0], code[5] = 0xb8, 0xc3
		binary.LittleEndian.PutUint32(code[1:], v)
	}
	check := func(want uintptr) {
		t.Helper()
		if got, err := m.Run(fn); err != nil || got != want {
			t.Fatalf("got %d, %v; want %d", got, err, want)
		}
	}
	put(7)
	check(7)
	if got, err := m.Run(munmap, fn, mem.PageSize); err != nil || got != 0 {
		t.Fatalf("munmap: %d, %v", int64(got), err)
	}
	if _, err := unix.MmapPtr(-1, 0, at, mem.PageSize, unix.PROT_READ|unix.PROT_WRITE|unix.PROT_EXEC, unix.MAP_PRIVATE|unix.MAP_ANON|unix.MAP_FIXED); err != nil {
		t.Fatal(err)
	}
	defer unix.MunmapPtr(at, mem.PageSize)
	put(8)
	check(8)
	if got, err := m.Run(mprotect, fn, mem.PageSize, unix.PROT_READ|unix.PROT_WRITE); err != nil || got != 0 {
		t.Fatalf("mprotect: %d, %v", int64(got), err)
	}
	put(9)
	if got, err := m.Run(mprotect, fn, mem.PageSize, unix.PROT_READ|unix.PROT_EXEC); err != nil || got != 0 {
		t.Fatalf("mprotect: %d, %v", int64(got), err)
	}
	check(9)
	if st := m.Stats(); st.Invalidated < 2 || st.Flushes != 0 {
		t.Errorf("%d fragments deleted, %d flushes: want at least 2 and none", st.Invalidated, st.Flushes)
	}
}

// TestCodeIndexUnrelated: a munmap of memory that holds no code costs no
// translation: the fragments stay.
func TestCodeIndexUnrelated(t *testing.T) {
	m, _ := newTestMachine(t, vmm.Config{AllowElsewhere: true}, nil)
	c := newSMCCode(t, m.v, false, 0)
	runSMC(t, m, c, 1)
	frags := len(m.frags)
	r, err := m.v.MapAppAnon(0, 16*mem.PageSize, mem.ProtRW, mem.Hint, "smc test data")
	if err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	m.dropRange(r, true)
	m.mu.Unlock()
	if err := m.v.ReleaseApp(r); err != nil {
		t.Fatal(err)
	}
	runSMC(t, m, c, 1)
	if st := m.Stats(); len(m.frags) != frags || st.Invalidated != 0 || st.Flushes != 0 {
		t.Errorf("%d fragments (had %d), %d deleted, %d flushes after an unrelated munmap", len(m.frags), frags, st.Invalidated, st.Flushes)
	}
	// Flush gives the page its protection back.
	m.Flush()
	if p := protOf(t, m.v, c.fns()); p != mem.ProtRWX || m.pages.len() != 0 || m.wpPages != 0 {
		t.Errorf("after Flush: page %v, %d pages indexed, %d write-protected", p, m.pages.len(), m.wpPages)
	}
	vmmtest.SyncCheck(t, m.v, "after Flush")
}

// TestSMCPrograms runs the programs whose code changes under them by
// memory calls and system calls (smc_mprotect, smc_remap, smc_syscall),
// ET_EXEC and static PIE, under reachvm and natively: same output, same
// status, and aspacem in step with the kernel after the run (checked by
// the child).
func TestSMCPrograms(t *testing.T) {
	for _, name := range []string{"smc_mprotect", "smc_remap", "smc_syscall", "smc_rwx", "smc_jit"} {
		for _, kind := range programKinds {
			t.Run(name+"/"+kind.name, func(t *testing.T) {
				path := buildProgram(t, name, kind.name)
				want, wantCode := runNative(t, path)
				got, stderr, code := runProgram(t, path, false)
				if code != wantCode || got != want {
					t.Errorf("status %d, output:\n%s\nstderr: %s\nwant status %d, output:\n%s", code, got, stderr, wantCode, want)
				}
			})
		}
	}
}

// TestCodeRunNative: a native run of code that writes the pages the
// machine write-protected runs (they get their protection back first),
// and the translation that follows sees what it wrote.
func TestCodeRunNative(t *testing.T) {
	m, _ := newTestMachine(t, vmm.Config{AllowElsewhere: true}, nil)
	c := newSMCCode(t, m.v, false, 0)
	runSMC(t, m, c, 1)
	// memset-like native code: write version 2 of the functions from a
	// buffer with rep movsb (rdi the code, rsi the bytes, rdx the count).
	copier := syscallCode(t, 0)
	putCode(copier, []byte{0x48, 0x89, 0xd1, 0xf3, 0xa4, 0xc3}) // mov rcx, rdx; rep movsb; ret
	v2 := smcFuncs(2, false)
	if _, err := m.RunNative(copier, c.fns(), uintptr(unsafe.Pointer(&v2[0])), uintptr(len(v2))); err != nil {
		t.Fatal(err)
	}
	if p := protOf(t, m.v, c.fns()); p != mem.ProtRWX {
		t.Fatalf("code page %v after a native run, want %v", p, mem.ProtRWX)
	}
	runSMC(t, m, c, 2)
}

// TestCodeCloseUnprotects: closing the machine gives the pages it
// write-protected their protection back (the application memory may
// outlive it), and the VMM still matches the kernel.
func TestCodeCloseUnprotects(t *testing.T) {
	v, err := vmm.New(vmm.Config{AllowElsewhere: true, VMCodeSize: 64 << 20, VMHeapSize: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	m, err := NewMachine(vmcode.New(v), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := newSMCCode(t, v, false, 0)
	runSMC(t, m, c, 1)
	if p := protOf(t, m.v, c.fns()); p != mem.ProtRX {
		t.Fatalf("code page %v after the run, want %v", p, mem.ProtRX)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if p := protOf(t, m.v, c.fns()); p != mem.ProtRWX {
		t.Errorf("code page %v after Close, want %v", p, mem.ProtRWX)
	}
	vmmtest.SyncCheck(t, m.v, "after Close")
}

package jit

import (
	"encoding/binary"
	"strings"
	"testing"
	"unsafe"

	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/jit/internal/amd64"
	"github.com/reachvm/reachvm/jit/internal/decode"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmcode"
)

// probe is native code in vmcode that clean calls in the tests call: it
// records its arguments and counts its calls in a read-write data slot,
// then clobbers every register the C ABI lets it clobber (and the flags,
// and with vector the SSE registers), so that a clean call that fails to
// keep the application's state shows in the application's results.
type probe struct {
	// fn records its six arguments at data[8..56) and adds 1 to the
	// word at data[0]; fnAt(a, pc, i) stores a at data[64+8*i] for i
	// < 256.
	fn, fnAt uintptr
	// data is the slot's memory.
	data []byte
}

func newProbe(t *testing.T, m *Machine, code *vmcode.Code, vector bool) *probe {
	t.Helper()
	s, err := m.v.ReserveSlot(64<<10, "clean-call probe")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(s.Base(), s.Size(), mem.ProtRW); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Release() })
	data := s.Base()
	u, err := allocUnit(code, 4096)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.free() })
	a := amd64.NewAssembler(u.exec)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	clobber := func() {
		for _, r := range []amd64.Reg{amd64.RAX, amd64.RCX, amd64.RDX, amd64.RSI, amd64.RDI, amd64.R8, amd64.R9, amd64.R10, amd64.R11} {
			a.MovImm64(r, 0xdead0000_0000beef+uint64(r))
		}
		a.AddRR(amd64.RAX, amd64.RCX) // the flags too
		if vector {
			for x := byte(0); x < 16; x++ {
				// pcmpeqd xmmX, xmmX: all ones.
				if x >= 8 {
					a.Raw(0x66, 0x45, 0x0f, 0x76, 0xc0|(x&7)<<3|x&7)
				} else {
					a.Raw(0x66, 0x0f, 0x76, 0xc0|x<<3|x)
				}
			}
		}
		a.Ret()
	}
	p := &probe{fn: a.PC()}
	for k, r := range argRegs {
		must(a.MovStore(amd64.RIPRel(data+8+8*uintptr(k)), r))
	}
	must(a.LockAddMemImm(amd64.RIPRel(data), 1))
	clobber()
	p.fnAt = a.PC()
	must(a.Lea(amd64.RAX, amd64.RIPRel(data+64)))
	a.Raw(0x48, 0x89, 0x3c, 0xd0) // mov [rax+rdx*8], rdi
	clobber()
	u.write(u.exec, a.Bytes())
	p.data = rawmem.Bytes(data, s.Size())
	return p
}

func (p *probe) word(off int) uint64 { return binary.LittleEndian.Uint64(p.data[off:]) }

// TestCleanCallKeepsState: a clean call before every instruction of
// every kernel, to a function that clobbers every caller-saved register
// and the flags (and, saved by CleanCallVector, the vector registers),
// leaves the kernels' results as they are natively; the function is
// called once per instruction executed, as a counter beside it counts,
// with its arguments as asked.
func TestCleanCallKeepsState(t *testing.T) {
	for _, vector := range []bool{false, true} {
		name := "gprs"
		if vector {
			name = "vector"
		}
		t.Run(name, func(t *testing.T) {
			ctr := NewCounter(PerThread)
			var p *probe
			client := &Client{Block: func(b *Block) {
				for i := range b.Len() {
					args := []Arg{ArgConst(-5), ArgPC(), ArgReg(RSP), ArgReg(RBX), ArgReg(RDI), ArgConst(1 << 40)}
					if vector {
						b.CleanCallVector(i, p.fn, args...)
					} else {
						b.CleanCall(i, p.fn, args...)
					}
					b.AddCounter(i, ctr, 1)
				}
			}}
			m, code := newTestMachine(t, placements[1].cfg, &Options{Client: client})
			p = newProbe(t, m, code, vector)
			lib := loadKernels(t, m.v)
			for _, k := range kernels {
				if k.need != nil && !k.need() {
					continue
				}
				if !vector && (k.name == "k_sse2" || k.name == "k_avx2") {
					continue // their vector registers are live
				}
				fn := lookup(t, lib, k.name)
				want := Call(fn, k.args...)
				before, cbefore := p.word(0), ctr.Value()
				got, err := m.Run(fn, k.args...)
				if err != nil {
					t.Fatalf("%s: %v", k.name, err)
				}
				if got != want {
					t.Errorf("%s%v = %#x with clean calls, %#x native", k.name, k.args, got, want)
				}
				calls, counted := p.word(0)-before, ctr.Value()-cbefore
				if calls == 0 || calls != counted {
					t.Errorf("%s: %d clean calls, %d instructions counted", k.name, calls, counted)
				}
				if a0, a5 := int64(p.word(8)), p.word(48); a0 != -5 || a5 != 1<<40 {
					t.Errorf("%s: constant arguments %d, %#x; want -5, 1<<40", k.name, a0, a5)
				}
				if pc := uintptr(p.word(16)); pc < lib.Start() || pc >= lib.Start()+lib.Size() {
					t.Errorf("%s: ArgPC %#x is not in the library", k.name, pc)
				}
			}
		})
	}
}

// TestCleanCallArgs: ArgReg and ArgEA give the application's values, on
// code whose registers are known: the effective addresses of a based
// and indexed load, a RIP-relative add, a lea off rsp and a load of the
// return address, and rdi and rsi as passed.
func TestCleanCallArgs(t *testing.T) {
	var p *probe
	client := &Client{Block: func(b *Block) {
		for i := range b.Len() {
			if in := b.Instr(i); in.in.HasModRM() && in.in.Mod() != 3 {
				b.CleanCall(i, p.fnAt, ArgEA(), ArgPC(), ArgConst(int64(i)))
			}
		}
		b.CleanCall(0, p.fn, ArgReg(RDI), ArgReg(RSI), ArgReg(RSP))
	}}
	m, code := newTestMachine(t, placements[1].cfg, &Options{Client: client})
	p = newProbe(t, m, code, false)
	u, err := allocUnit(code, 4096)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.free() })
	a := amd64.NewAssembler(u.exec)
	data := a.PC() + 2048 // a word in the unit, past the code
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	fn := a.PC()
	must(a.MovLoad(amd64.RAX, amd64.MI(amd64.RDI, amd64.RSI, 8, 16))) // 0: rdi+rsi*8+16
	a.Raw(0x48, 0x03, 0x05)                                           // 1: add rax, [rip+data]
	a.Raw(rel32To(a, data, 0)...)
	must(a.Lea(amd64.RCX, amd64.M(amd64.RSP, -64)))   // 2: rsp-64
	must(a.MovLoad(amd64.RDX, amd64.M(amd64.RSP, 0))) // 3: rsp
	a.Ret()
	u.write(u.exec, a.Bytes())

	arr := make([]uint64, 8)
	arr[3] = 7
	base := uintptr(unsafe.Pointer(&arr[0]))
	got, err := m.Run(fn, base-16, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got != 7 {
		t.Errorf("the code returned %d, want 7", got)
	}
	ea := func(i int) uintptr { return uintptr(p.word(64 + 8*i)) }
	if ea(0) != base+8*3 {
		t.Errorf("ArgEA of [rdi+rsi*8+16] = %#x, want %#x", ea(0), base+24)
	}
	if ea(1) != data {
		t.Errorf("ArgEA of [rip+data] = %#x, want %#x", ea(1), data)
	}
	if ea(2) != ea(3)-64 || ea(3) == 0 {
		t.Errorf("ArgEA of [rsp-64] = %#x, of [rsp] %#x: want 64 apart", ea(2), ea(3))
	}
	if rdi, rsi, rsp := uintptr(p.word(8)), p.word(16), uintptr(p.word(24)); rdi != base-16 || rsi != 3 || rsp != ea(3) {
		t.Errorf("ArgReg: rdi %#x, rsi %d, rsp %#x; want %#x, 3, %#x", rdi, rsi, rsp, base-16, ea(3))
	}
}

// TestCleanCallIsRel32: the clean call to a function in vmcode is one
// rel32 call, found by decoding the code cache.
func TestCleanCallIsRel32(t *testing.T) {
	var p *probe
	client := &Client{Block: func(b *Block) { b.CleanCall(0, p.fn) }}
	m, code := newTestMachine(t, placements[1].cfg, &Options{Client: client})
	p = newProbe(t, m, code, false)
	lib := loadKernels(t, m.v)
	fn := lookup(t, lib, "k_fib")
	if _, err := m.Run(fn, 10); err != nil {
		t.Fatal(err)
	}
	calls := 0
	for _, fr := range m.frags {
		b := fr.unit.bytes(fr.entry, uintptr(fr.codeLen))
		for off := 0; off < len(b); {
			in, err := decode.Decode(b[off:])
			if err != nil {
				break // the exit stubs' data
			}
			if in.Kind == decode.CallRel && fr.entry+uintptr(off)+uintptr(in.Len)+uintptr(int64(in.Rel)) == p.fn {
				calls++
			}
			off += int(in.Len)
		}
	}
	if calls == 0 || int(p.word(0)) == 0 {
		t.Fatalf("%d rel32 calls to the probe in %d fragments, %d calls made", calls, len(m.frags), p.word(0))
	}
	t.Logf("%d rel32 calls to the client's function in %d fragments", calls, len(m.frags))
}

// TestCleanCallErrors: bad clean calls fail the translation, saying why.
func TestCleanCallErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		ins  func(b *Block)
		want string
	}{
		{"index", func(b *Block) { b.CleanCall(b.Len(), 0x1000) }, "CleanCall at instruction"},
		{"nil", func(b *Block) { b.CleanCall(0, 0) }, "nil function"},
		{"args", func(b *Block) { b.CleanCall(0, 0x1000, make([]Arg, 7)...) }, "7 arguments"},
		{"reg", func(b *Block) { b.CleanCall(0, 0x1000, ArgReg(16)) }, "register reg(16)"},
		{"cell", func(b *Block) { b.AddCell(0, 0x1001, 1, false) }, "not an aligned"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := newTestMachine(t, placements[1].cfg, &Options{Client: &Client{Block: tc.ins}})
			lib := loadKernels(t, m.v)
			_, err := m.Run(lookup(t, lib, "k_fib"), 5)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one saying %q", err, tc.want)
			}
		})
	}
}

// TestCleanCallContext: a function given ArgContext reads the
// application's registers and changes them and the flags: the
// application goes on with its values.
func TestCleanCallContext(t *testing.T) {
	var fn uintptr
	client := &Client{Block: func(b *Block) {
		for i := range b.Len() {
			if in := b.Instr(i); len(in.Bytes()) == 3 && in.Bytes()[1] == 0x11 {
				b.CleanCall(i, fn, ArgContext())
			}
		}
	}}
	m, code := newTestMachine(t, placements[1].cfg, &Options{Client: client})
	u, err := allocUnit(code, 4096)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.free() })
	a := amd64.NewAssembler(u.exec)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// fn(ctx): ctx.rax += ctx.rdi; ctx.rbx = 5; set CF in ctx.rflags;
	// and rbx changed (callee-saved: the sequence restores it from the
	// context anyway).
	fn = a.PC()
	must(a.MovLoad(amd64.RAX, amd64.M(amd64.RDI, 8*int32(RDI))))
	a.Raw(0x48, 0x01, 0x07) // add [rdi], rax
	must(a.MovStoreImm32(amd64.M(amd64.RDI, 8*int32(RBX)), 5))
	a.Raw(0x48, 0x83, 0x8f, 0x80, 0x00, 0x00, 0x00, 0x01) // or qword [rdi+0x80], 1: CF
	a.MovImm32(amd64.RBX, 77)
	a.Ret()
	// app(rdi): rax = rdi; rbx = 0; (the call) rax += rbx + CF; ret
	app := a.PC()
	a.MovRR(amd64.RAX, amd64.RDI)
	a.Push(amd64.RBX)
	a.MovImm32(amd64.RBX, 0)
	a.Raw(0x48, 0x11, 0xd8) // adc rax, rbx: the clean call is before it
	a.Pop(amd64.RBX)
	a.Ret()
	u.write(u.exec, a.Bytes())

	got, err := m.Run(app, 1000)
	if err != nil {
		t.Fatal(err)
	}
	// rax = 1000 + 1000 (the function's add) + 5 (rbx) + 1 (CF).
	if got != 2006 {
		t.Errorf("app(1000) = %d, want 2006 (rax doubled, rbx 5 and CF set by the function)", got)
	}
}

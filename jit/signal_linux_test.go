//go:build linux && amd64

package jit

import (
	"debug/elf"
	"errors"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/vmcode"
	"github.com/reachvm/reachvm/vmm"
)

// TestFaults runs programs that fault or get a signal with no handler and
// checks what Program.Run reports against what the kernel reports for
// the same instruction natively: the signal, si_code, si_addr and the
// application PC (the faulting instruction's symbol), not a cache
// address.
func TestFaults(t *testing.T) {
	const (
		siKernel   = 0x80
		fpeIntDiv  = 1
		illIllopn  = 2
		segvMaperr = 1
	)
	cases := []struct {
		arg    string
		sig    unix.Signal
		code   int32
		pc     string // symbol of the PC; "" for a signal sent, not raised
		addrPC bool   // si_addr is the PC
		fault  bool
	}{
		{"null", unix.SIGSEGV, segvMaperr, "fault_null", false, true},
		{"div", unix.SIGFPE, fpeIntDiv, "fault_div", true, true},
		{"ud2", unix.SIGILL, illIllopn, "fault_ud2", true, true},
		{"int3", unix.SIGTRAP, siKernel, "fault_int3_end", false, true},
		{"invalid", unix.SIGILL, illIllopn, "fault_invalid", true, true},
		{"hlt", unix.SIGSEGV, siKernel, "fault_hlt", false, true},
		{"afterkill", unix.SIGILL, illIllopn, "fault_afterkill", true, true},
		{"jumpnull", unix.SIGSEGV, segvMaperr, "", false, true},
		{"alarm", unix.SIGALRM, 0x80, "", false, false},
	}
	for _, kind := range programKinds {
		path := buildProgram(t, "faults", kind.name)
		syms := symbols(t, path)
		for _, c := range cases {
			t.Run(kind.name+"/"+c.arg, func(t *testing.T) {
				for _, blocks := range []int{0, 1} {
					v, err := vmm.New(vmm.Config{VMCodeSize: 64 << 20, VMHeapSize: 64 << 20})
					if err != nil {
						t.Fatal(err)
					}
					defer v.Close()
					m, err := NewMachine(vmcode.New(v), &Options{MaxBlocks: blocks})
					if err != nil {
						t.Fatal(err)
					}
					p, err := m.LoadProgram(path)
					if err != nil {
						t.Fatal(err)
					}
					_, err = p.Run([]string{path, c.arg}, nil)
					var se *SignalError
					if !errors.As(err, &se) {
						t.Fatalf("max blocks %d: Run = %v, want a *SignalError", blocks, err)
					}
					if se.Signal != c.sig || se.Fault != c.fault || (c.fault || c.sig == unix.SIGALRM) && se.Code != c.code {
						t.Errorf("max blocks %d: %v (code %#x, fault %v), want %v (code %#x, fault %v)", blocks, se.Signal, se.Code, se.Fault, c.sig, c.code, c.fault)
					}
					if c.pc != "" {
						want, ok := syms[c.pc]
						if !ok {
							t.Fatalf("no symbol %s", c.pc)
						}
						want += p.bias
						if se.PC != want {
							t.Errorf("max blocks %d: PC %#x, want %s = %#x", blocks, se.PC, c.pc, want)
						}
						if c.addrPC && se.Addr != want {
							t.Errorf("max blocks %d: si_addr %#x, want the PC %#x", blocks, se.Addr, want)
						}
					}
					if c.fault && !c.addrPC && se.Addr != 0 {
						t.Errorf("max blocks %d: si_addr %#x, want 0", blocks, se.Addr)
					}
					if err := m.Close(); err != nil {
						t.Error(err)
					}
				}
			})
		}
	}
}

// symbols returns the addresses of an ELF file's symbols.
func symbols(t *testing.T, path string) map[string]uintptr {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]uintptr)
	for _, s := range syms {
		out[s.Name] = uintptr(s.Value)
	}
	return out
}

//go:build linux && amd64

package jit

import (
	"debug/elf"
	"errors"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/jit/internal/amd64"

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
	out := make(map[string]uintptr)
	for _, s := range elfSymbols(t, path) {
		out[s.Name] = uintptr(s.Value)
	}
	return out
}

// elfSymbols returns the symbol table of the ELF file at path.
func elfSymbols(t testing.TB, path string) []elf.Symbol {
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
	return syms
}

// TestFaultsInSites checks state translation where the fault comes in
// code the translator inserted: an indirect jump's or call's memory
// operand, a return's stack read. The application's state must be the one
// before the branch: rcx and rdx, which the sites borrow, and rsp, which
// they move early, as the application had them.
func TestFaultsInSites(t *testing.T) {
	const prologue = "49 89 e0 48 c7 c1 11 11 00 00 48 c7 c2 22 22 00 00" // mov r8, rsp; mov rcx, 0x1111; mov rdx, 0x2222
	cases := []struct {
		name, hex string
		arg       uintptr
		off       uintptr // of the faulting instruction
		addr      uintptr
		rsp       string // "r8": rsp as at entry; "arg": rsp = the argument
	}{
		{"load", "48 8b 07 c3", 16, 0, 16, ""},
		{"jmp-mem", prologue + " ff 27", 24, 17, 24, "r8"},
		{"call-mem", prologue + " ff 17 c3", 32, 17, 32, "r8"},
		{"ret", prologue + " 48 89 fc c3", 40, 20, 40, "arg"},
		{"jmp-null", "31 c0 ff e0", 0, 0, 0, ""},
	}
	for _, o := range []struct {
		name string
		opts Options
	}{
		{"default", Options{}},
		{"strict", Options{StrictFlags: true}},
		{"no-ic", Options{InlineCache: -1, CallInlineCache: -1}},
		{"blocks1", Options{MaxBlocks: 1}},
	} {
		for _, c := range cases {
			t.Run(o.name+"/"+c.name, func(t *testing.T) {
				opts := o.opts
				m, code := newTestMachine(t, vmm.Config{}, &opts)
				fn := appCode(t, code, c.hex)
				_, err := m.Run(fn, c.arg)
				var se *SignalError
				if !errors.As(err, &se) {
					t.Fatalf("Run = %v, want a *SignalError", err)
				}
				want := fn + c.off
				if c.name == "jmp-null" {
					want = 0
				}
				addr := c.addr
				if o.opts.StrictFlags && c.name == "ret" {
					// Under StrictFlags a return saves the flags
					// below rsp before it reads its address: a
					// stack that is not there faults 8 bytes lower
					// than natively (the state is still the one
					// before the ret).
					addr -= 8
				}
				if se.Signal != unix.SIGSEGV || se.PC != want || se.Addr != addr {
					t.Errorf("%v at %#x (address %#x), want SIGSEGV at %#x (address %#x)", se.Signal, se.PC, se.Addr, want, addr)
				}
				if c.rsp == "" {
					return
				}
				if rcx, rdx := m.reg(amd64.RCX), m.reg(amd64.RDX); rcx != 0x1111 || rdx != 0x2222 {
					t.Errorf("rcx %#x rdx %#x, want 0x1111 and 0x2222", rcx, rdx)
				}
				wantRSP := m.reg(amd64.R8)
				if c.rsp == "arg" {
					wantRSP = uint64(c.arg)
				}
				if rsp := m.reg(amd64.RSP); rsp != wantRSP {
					t.Errorf("rsp %#x, want %#x", rsp, wantRSP)
				}
			})
		}
	}
}

// TestAsyncInSites delivers a timer's SIGALRM into a loop that spends
// most of its time in indirect calls and returns, where the signal often
// comes in code the translator inserted: the dispatcher must single-step
// to an exact point and deliver it there, every time.
func TestAsyncInSites(t *testing.T) {
	path := buildProgram(t, "faults", programKinds[0].name)
	steps, runs := 0, 40
	if testing.Short() {
		runs = 10
	}
	for i := range runs {
		v, err := vmm.New(vmm.Config{VMCodeSize: 64 << 20, VMHeapSize: 64 << 20})
		if err != nil {
			t.Fatal(err)
		}
		m, err := NewMachine(vmcode.New(v), &Options{StrictFlags: i%2 == 1})
		if err != nil {
			t.Fatal(err)
		}
		p, err := m.LoadProgram(path)
		if err != nil {
			t.Fatal(err)
		}
		arg := "alarmcalls"
		if i%4 == 3 {
			arg = "alarmexits"
		}
		_, err = p.Run([]string{path, arg}, nil)
		var se *SignalError
		if !errors.As(err, &se) || se.Signal != unix.SIGALRM {
			t.Fatalf("run %d: %v, want death by SIGALRM", i, err)
		}
		steps += m.Stats().Steps
		v.Close()
	}
	t.Logf("%d single steps over %d runs", steps, runs)
	if runs >= 40 && steps == 0 {
		t.Errorf("no signal came in inserted code in %d runs: the stepping path went untested", runs)
	}
}

// TestWaitSignal checks the wait that rt_sigsuspend and rt_sigtimedwait
// use: it returns when a signal the program listens for comes, from any
// thread of the process, and times out when none does.
func TestWaitSignal(t *testing.T) {
	m, _ := newTestMachine(t, vmm.Config{}, nil)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	done, err := m.runningOn(1 << (unix.SIGUSR1 - 1))
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	ts := unix.NsecToTimespec(int64(30 * time.Millisecond))
	start := time.Now()
	if !m.waitSignal(&ts) {
		t.Fatal("waitSignal returned before its timeout with no signal sent")
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Errorf("timed out after %v, before the 30ms asked", d)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		unix.Kill(os.Getpid(), unix.SIGUSR1)
	}()
	ts = unix.NsecToTimespec(int64(10 * time.Second))
	if m.waitSignal(&ts) {
		t.Fatal("waitSignal timed out: the SIGUSR1 sent to the process never reached the waiting thread")
	}
}

// TestFaultAddressInCache checks that a SIGSEGV's si_addr, a data
// address, is reported as it is even when it lies in the code cache (an
// application writing over reachvm's code, which W^X makes read-only):
// only the instruction addresses of SIGILL, SIGFPE and SIGTRAP are
// translated.
func TestFaultAddressInCache(t *testing.T) {
	m, code := newTestMachine(t, vmm.Config{}, nil)
	fn := appCode(t, code, "48 c7 07 01 00 00 00 c3") // mov qword [rdi], 1; ret
	if m.genUnit.unit == nil {
		t.Skip("W^X off: the cache is writable, the write does not fault")
	}
	target := m.genUnit.exec // reachvm's routines: executable, not writable
	_, err := m.Run(fn, target)
	var se *SignalError
	if !errors.As(err, &se) {
		t.Fatalf("Run = %v, want a *SignalError", err)
	}
	if se.Signal != unix.SIGSEGV || se.PC != fn || se.Addr != target {
		t.Errorf("%v at %#x (address %#x), want SIGSEGV at %#x (address %#x, the cache's)", se.Signal, se.PC, se.Addr, fn, target)
	}
}

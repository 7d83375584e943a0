package jit

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/jit/internal/amd64"
	kern "github.com/reachvm/reachvm/jit/kernels"
)

// TestProgramFS runs fsbase natively (ET_EXEC) and under reachvm (ET_EXEC
// and static PIE), with FS-relative operands translated (the default here)
// and with FS switched by arch_prctl at every exit: the program's FS is
// its own, set with arch_prctl, kept across system calls and a signal
// handler, read back with ARCH_GET_FS, with the kernel's errors; and
// reading %fs before setting it faults as natively (the base is 0), where
// Go's thread pointer used to answer. sig_basic's cases that take
// signals in the cache run with FS switched too: the signal layer chains
// to Go's handlers only with Go's FS.
func TestProgramFS(t *testing.T) {
	ref := buildProgram(t, "fsbase", "exec")
	sigRef := buildProgram(t, "sig_basic", "exec")
	for _, mode := range []string{"translated", "arch_prctl"} {
		for _, kind := range programKinds {
			prog := buildProgram(t, "fsbase", kind.name)
			for _, args := range [][]string{{}, {"unset"}} {
				t.Run(mode+"/"+kind.name+"/"+strings.Join(append([]string{"set"}, args...), "_"), func(t *testing.T) {
					cmd := reachvmCmd(prog, kind.name == "pie", args...)
					cmd.Env = append(cmd.Env, "REACHVM_PROGRAM_FS="+mode)
					matchNative(t, ref, args, cmd)
				})
			}
		}
		sig := buildProgram(t, "sig_basic", kern.Exec)
		for _, args := range [][]string{{"info"}, {"default"}, {"restart"}, {"altstack"}} {
			t.Run(mode+"/sig_basic/"+strings.Join(args, "_"), func(t *testing.T) {
				cmd := reachvmCmd(sig, false, args...)
				cmd.Env = append(cmd.Env, "REACHVM_PROGRAM_FS="+mode)
				matchNative(t, sigRef, args, cmd)
			})
		}
	}
}

// BenchmarkExitFS measures a cache exit and entry around a system call
// (getppid, which the dispatcher passes to the kernel) for a program that
// set its FS: the same call made from Go (the baseline), an exit that
// switches nothing (the program's FS left Go's, as before programs owned
// FS), and the exit switching FS both ways with arch_prctl and, where the
// kernel enables it, wrfsbase. The difference is the switch's cost per
// exit.
func BenchmarkExitFS(b *testing.B) {
	b.Run("go-syscall", func(b *testing.B) {
		for b.Loop() {
			unix.RawSyscall(unix.SYS_GETPPID, 0, 0, 0)
		}
	})
	path := buildProgram(b, "fsbase", kern.PIE)
	run := func(b *testing.B, how fsSwitch) {
		_, m := newProgramMachine(b)
		p, err := m.LoadProgram(path)
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		if err := m.reemit(how); err != nil {
			b.Fatal(err)
		}
		if code, err := p.Run([]string{path, "exits", "10"}, nil); err != nil || code != 0 {
			b.Fatalf("fsbase exits: %d, %v", code, err)
		}
		b.ResetTimer()
		if code, err := p.Run([]string{path, "exits", strconv.Itoa(b.N)}, nil); err != nil || code != 0 {
			b.Fatalf("fsbase exits: %d, %v", code, err)
		}
	}
	// Translated FS-relative operands switch nothing at an exit: the
	// baseline of the switches.
	b.Run("exit-translated", func(b *testing.B) { run(b, fsMangle) })
	b.Run("exit-arch_prctl", func(b *testing.B) { run(b, fsSyscall) })
	b.Run("exit-wrfsbase", func(b *testing.B) {
		if !haveFSGSBASE() {
			b.Skip("the kernel does not enable FSGSBASE here (AT_HWCAP2 bit 1 clear)")
		}
		run(b, fsInstr)
	})
}

// BenchmarkFSAccess measures two FS-relative loads (a loop of fsbase's
// "loads"), with FS switched at exits (the loads run as they are) and
// with the loads translated (each gets a spill, a load of the context's
// FS base and a restore): the difference is what translating costs per
// access, to set against BenchmarkExitFS's cost per exit.
func BenchmarkFSAccess(b *testing.B) {
	path := buildProgram(b, "fsbase", kern.PIE)
	for _, how := range []fsSwitch{fsSyscall, fsMangle} {
		b.Run(how.String(), func(b *testing.B) {
			_, m := newProgramMachine(b)
			p, err := m.LoadProgram(path)
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			if err := m.reemit(how); err != nil {
				b.Fatal(err)
			}
			if code, err := p.Run([]string{path, "loads", "10"}, nil); err != nil || code != 0 {
				b.Fatalf("fsbase loads: %d, %v", code, err)
			}
			b.ResetTimer()
			if code, err := p.Run([]string{path, "loads", strconv.Itoa(b.N)}, nil); err != nil || code != 0 {
				b.Fatalf("fsbase loads: %d, %v", code, err)
			}
		})
	}
}

// reemit emits the machine's routines again with FS switched as how says.
//
// Preconditions: nothing is translated yet (fragments jump to the
// routines, which move).
func (m *Machine) reemit(how fsSwitch) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.frags) != 0 {
		return fmt.Errorf("reemit: %d fragments translated", len(m.frags))
	}
	m.fs = how
	a := amd64.NewAssembler(m.genUnit.exec)
	gen, err := emitGencode(a, m.ctx, m.lay, m.vs, m.fs)
	if err != nil {
		return err
	}
	if uintptr(a.Len()) > m.genUnit.size {
		return fmt.Errorf("reemit: %d bytes of routines", a.Len())
	}
	m.gen = gen
	m.genUnit.write(m.genUnit.exec, a.Bytes())
	m.genUnit.used = uintptr(a.Len())
	return m.registerRoutines()
}

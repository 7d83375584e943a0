//go:build linux && amd64

package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/reachvm/reachvm/internal/rawsig"
	"github.com/reachvm/reachvm/jit"
	"github.com/reachvm/reachvm/vmcode"
	"github.com/reachvm/reachvm/vmm"
)

// execRun loads the static executable argv[0] itself and runs it under
// the translator, with argv and this process's environment, and returns
// its status. The program's output goes to this process's standard output
// and error.
func execRun(o *runOptions, argv []string, stderr io.Writer) int {
	cfg := vmm.Config{VMCodeSize: 256 << 20, VMHeapSize: 1 << 30}
	if !o.high {
		cfg.VMCodeBase, cfg.AllowElsewhere = jit.DefaultVMCodeBase, true
	}
	v, err := vmm.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "reachvm run: %v\n", err)
		return 125
	}
	defer v.Close()
	m, err := jit.NewMachine(vmcode.New(v), &jit.Options{PerfMap: o.perfMap, JitDump: o.jitDump, GDB: o.gdb, StrictFlags: o.strict, MaxBlocks: o.maxBlocks})
	if err != nil {
		fmt.Fprintf(stderr, "reachvm run: %v\n", err)
		return 125
	}
	defer m.Close()
	prog := argv[0]
	p, err := m.LoadProgram(prog)
	if err != nil {
		fmt.Fprintf(stderr, "reachvm run: %v\n", err)
		return 126
	}
	code, err := p.Run(argv, os.Environ())
	var killed *jit.SignalError
	switch {
	case errors.As(err, &killed):
		if !o.quiet {
			fmt.Fprintf(stderr, "reachvm run: %s: %v\n", prog, err)
		}
		code = 128 + int(killed.Signal)
	case err != nil:
		fmt.Fprintf(stderr, "reachvm run: %s: %v\n", prog, err)
		code = 127
	}
	if o.stats {
		st := m.Stats()
		s := runStats{Program: prog, ExitStatus: code,
			Fragments: st.Fragments, Blocks: st.Blocks, Instrs: st.Instrs, Exits: st.Exits, IBLMisses: st.IBLMisses,
			Links: st.Links, Polymorphic: st.Polymorphic, Flushes: st.Flushes, Mangled: st.Mangled, Syscalls: st.Syscalls,
			CacheBytes: uint64(st.CacheBytes), Signals: st.Signals, Steps: st.Steps,
			Invalidated: st.Invalidated, CodeWrites: st.CodeWrites, Protected: st.WriteProtects}
		if err := s.write(stderr, o.json); err != nil {
			fmt.Fprintf(stderr, "reachvm run: %v\n", err)
		}
	}
	if killed != nil {
		// Die of the signal, as the program would have: the parent
		// sees it in the wait status, and the kernel dumps a core
		// where the program's would be. Only if that fails does
		// reachvm exit with the shell's 128+N.
		if err := rawsig.Die(killed.Signal); err != nil {
			fmt.Fprintf(stderr, "reachvm run: %v\n", err)
		}
		return code
	}
	if err != nil {
		return code
	}
	if err := p.Close(); err != nil {
		fmt.Fprintf(stderr, "reachvm run: closing %s: %v\n", prog, err)
	}
	return code
}

//go:build linux && amd64

package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"syscall"

	"github.com/reachvm/reachvm/clients"
	"github.com/reachvm/reachvm/internal/hostfd"
	"github.com/reachvm/reachvm/internal/rawsig"
	"github.com/reachvm/reachvm/jit"
	"github.com/reachvm/reachvm/vmcode"
	"github.com/reachvm/reachvm/vmm"
)

// The main goroutine stays on the process's main thread (LockOSThread in
// an init holds for main), so that the program run runs on the thread
// group leader. The kernel offers a process-directed signal (a timer's
// SIGALRM, a kill) to the leader first: the program's thread then takes
// it at once, as the native process's would. Run from another thread,
// the program would get such a signal only once the kernel's pick among
// the Go runtime's threads, often one asleep, was scheduled and
// forwarded it, and on a loaded machine the signals of the same kind
// sent in the meantime merged into that one.
func init() { runtime.LockOSThread() }

// selfRun returns the executable and the arguments before run's own that
// run this program's `reachvm run` in a new process image: reachvm
// itself. A test binary, which is not reachvm, replaces it
// (runAsChild).
var selfRun = func() (string, []string) { return "/proc/self/exe", []string{os.Args[0], "run"} }

// follow is jit.Options.Exec for run: the program's execve becomes an
// execve of reachvm itself running the new program with the same flags
// as this run, and the state the execve passes on in the hidden flags.
// The new program's environment is the process's: the one the program
// passed.
func (o *runOptions) follow(req *jit.ExecRequest) (string, []string, []string) {
	exe, argv := selfRun()
	argv = append(append(argv, o.followArgs()...),
		"--argv0="+req.Argv[0],
		fmt.Sprintf("--sigmask=%#x", req.Inherit.Mask),
		fmt.Sprintf("--sigign=%#x", req.Inherit.Ignored))
	if req.Inherit.ExecFn != "" {
		argv = append(argv, "--execfn="+req.Inherit.ExecFn)
	}
	if o.client != "" {
		// The client goes on in the new program (its report is the
		// new program's): its flags last, since its arguments end at
		// the "--" before the program.
		if o.clientOut != "" {
			argv = append(argv, "--client-out="+o.clientOut)
		}
		argv = append(append(argv, "--client="+o.client), o.clientArgs...)
	}
	argv = append(append(argv, "--", req.Path), req.Argv[1:]...)
	return exe, argv, req.Envp
}

// runGCPercent is the Go collector's target while a program runs.
const runGCPercent = 400

// runVMCodeSize is vmcode's size for a program: each of its threads takes
// about 2 MiB (a context with its indirect-branch table, and a first
// cache unit), so 512 MiB holds some 250 live threads with room for the
// caches, and from vmcode's usual base it still ends below 2 GiB, with
// 512 MiB above it for libraries placed within reach.
const runVMCodeSize = 512 << 20

// execRun loads the executable argv[0] (looked for in PATH if it has no
// slash and is not a followed execve's) itself and runs it under the
// translator, with argv (its argv[0] replaced by --argv0's) and this
// process's environment, and returns its status. The program's output
// goes to this process's standard output and error; reachvm's own
// messages go to stderr, or, when that is the process's standard error,
// to a copy of it (standardError).
//
// When the process exits right after (exitAfterRun), the program, the
// machine and the VMM are left for the kernel to take back with the
// process: closing them would unmap each piece and flush the cache
// (clearing its tables touches their pages) only for the exit to unmap
// the rest. The views (--perf-map, --jitdump, --gdb) are still closed,
// as their files and gdb's list want.
func execRun(o *runOptions, argv []string, stderr io.Writer) int {
	teardown := !exitAfterRun || o.perfMap || o.jitDump || o.gdb
	closeLater := func(c func() error) {
		if teardown {
			_ = c()
		}
	}
	if stderr == io.Writer(os.Stderr) {
		if f := standardError(); f != nil {
			defer f.Close()
			stderr = f
		}
	}
	if os.Getenv("GOGC") == "" {
		// What the translator allocates (fragments, exits, marks) lives
		// as long as the code cache: a collection at every doubling of
		// a heap that only grows costs time for nothing to free
		// (python's start-up: 0.94 s at 100, 0.85 s at 400, the same
		// peak RSS).
		debug.SetGCPercent(runGCPercent)
	}
	cfg := vmm.Config{VMCodeSize: runVMCodeSize, VMHeapSize: 1 << 30}
	if !o.high {
		cfg.VMCodeBase, cfg.AllowElsewhere = jit.DefaultVMCodeBase, true
	}
	v, err := vmm.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "reachvm run: %v\n", err)
		return 125
	}
	defer closeLater(v.Close)
	opts := &jit.Options{PerfMap: o.perfMap, JitDump: o.jitDump, GDB: o.gdb, StrictFlags: o.strict, MaxBlocks: o.maxBlocks, NoVDSO: o.noVDSO, NoJumpTables: o.noJumpTables, NoSlotBranches: o.noSlotBranches}
	if !o.execNative {
		opts.Exec = o.follow
	}
	var tool *clients.Tool
	if o.client != "" {
		if tool, err = clients.NewIn(v, o.client, o.clientArgs); err != nil {
			fmt.Fprintf(stderr, "reachvm run: %v\n", err)
			return 125
		}
		opts.Client = tool.Client
	}
	m, err := jit.NewMachine(vmcode.New(v), opts)
	if err != nil {
		fmt.Fprintf(stderr, "reachvm run: %v\n", err)
		return 125
	}
	defer closeLater(m.Close)
	prog := argv[0]
	in := &o.inherit
	inherited := jit.Inherited{Mask: in.sigMask, Ignored: in.sigIgnored, ExecFn: in.execFn}
	args := argv
	if in.argv0Set {
		args = append([]string{in.argv0}, argv[1:]...)
	} else {
		if !strings.Contains(prog, "/") {
			// As execvp (an execve followed has its path as the
			// program gave it): the path found is what the program
			// is started from (its AT_EXECFN); its argv[0] stays as
			// given.
			if found, err := exec.LookPath(prog); err == nil {
				prog = found
			}
		}
		// A script runs its interpreter, as execve runs it (a
		// followed execve's was resolved by the program's reachvm).
		if interp, iargs, err := jit.ResolveProgram(prog, args); err == nil && interp != prog {
			inherited.ExecFn = prog
			prog, args = interp, iargs
		}
	}
	p, err := m.LoadProgram(prog)
	var pe *jit.ProgramError
	if errors.As(err, &pe) && in.argv0Set {
		// A program's execve followed to one reachvm cannot load: it
		// runs natively, as the program's execve would have run it.
		if !o.quiet {
			fmt.Fprintf(stderr, "reachvm run: %v: running it natively\n", err)
		}
		err = jit.ExecNative(prog, args, os.Environ(), inherited)
	}
	if err != nil {
		fmt.Fprintf(stderr, "reachvm run: %v\n", err)
		return 126
	}
	p.Inherit(inherited)
	code, err := p.Run(args, os.Environ())
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
	if tool != nil {
		if err := writeReport(tool, o.clientOut, stderr); err != nil {
			fmt.Fprintf(stderr, "reachvm run: %v\n", err)
		}
	}
	if o.stats {
		st := m.Stats()
		s := runStats{Program: prog, ExitStatus: code,
			Fragments: st.Fragments, Blocks: st.Blocks, Instrs: st.Instrs, Exits: st.Exits, IBLMisses: st.IBLMisses,
			Links: st.Links, Polymorphic: st.Polymorphic, JumpTables: st.JumpTables, SlotBranch: st.SlotBranches, Flushes: st.Flushes, Mangled: st.Mangled, Syscalls: st.Syscalls,
			CacheBytes: uint64(st.CacheBytes), Signals: st.Signals, Steps: st.Steps,
			Invalidated: st.Invalidated, CodeWrites: st.CodeWrites, Protected: st.WriteProtects, Forks: st.Forks, Threads: st.Threads}
		s.HeapBytes, s.PeakRSS = memoryUse()
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
	if err != nil || !teardown {
		return code
	}
	if err := p.Close(); err != nil {
		fmt.Fprintf(stderr, "reachvm run: closing %s: %v\n", prog, err)
	}
	return code
}

// writeReport writes the client's report to the file out, or to stderr
// when out is empty.
func writeReport(tool *clients.Tool, out string, stderr io.Writer) error {
	if out == "" {
		return tool.Report(stderr)
	}
	f, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("%s report: %w", tool.Name, err)
	}
	if err := tool.Report(f); err != nil {
		f.Close()
		return fmt.Errorf("%s report: %w", tool.Name, err)
	}
	return f.Close()
}

// standardError returns a copy of the standard error at a descriptor
// above those a program normally uses (closed on exec), or nil if none
// can be made: the program owns descriptor 2 and may close or replace it
// (coreutils close it at exit), while reachvm still has the run's
// statistics or a signal's report to write.
func standardError() *os.File {
	fd, err := hostfd.DupHigh(2)
	if err != nil {
		return nil
	}
	return os.NewFile(uintptr(fd), "/dev/stderr")
}

// memoryUse returns the bytes of the Go heap's live and not yet swept
// objects, and the process's peak resident set (0 if getrusage fails).
func memoryUse() (heap, peakRSS uint64) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	if sample[0].Value.Kind() == metrics.KindUint64 {
		heap = sample[0].Value.Uint64()
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		peakRSS = uint64(ru.Maxrss) << 10 // KiB
	}
	return heap, peakRSS
}

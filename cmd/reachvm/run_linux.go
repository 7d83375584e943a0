//go:build linux && amd64

package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/reachvm/reachvm/jit"
	"github.com/reachvm/reachvm/vmcode"
	"github.com/reachvm/reachvm/vmm"
)

// cmdRun is `reachvm run [flags] PROG [ARGS...]`: it loads the static
// executable PROG itself and runs it under the translator, with ARGS and
// this process's environment, and exits with its status. The program's
// output goes to this process's standard output and error.
func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stats := fs.Bool("stats", false, "print the translator's counters to standard error at the end")
	perfMap := fs.Bool("perf-map", false, "write /tmp/perf-<pid>.map entries for the translated code")
	strict := fs.Bool("strict-flags", false, "keep the arithmetic flags exactly across calls and returns (for code outside the psABI)")
	high := fs.Bool("high", false, "let the OS place vmcode instead of asking for it below 2 GiB")
	maxBlocks := fs.Int("max-blocks", 0, "basic blocks per fragment (1: no superblocks; 0: the default)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: reachvm run [flags] PROG [ARGS...]\n\nRuns the static executable PROG (ET_EXEC or static PIE, no TLS, no threads) under\nreachvm's translator and exits with its status.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	cfg := vmm.Config{VMCodeSize: 256 << 20, VMHeapSize: 1 << 30}
	if !*high {
		cfg.VMCodeBase, cfg.AllowElsewhere = jit.DefaultVMCodeBase, true
	}
	v, err := vmm.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "reachvm run: %v\n", err)
		return 125
	}
	defer v.Close()
	m, err := jit.NewMachine(vmcode.New(v), &jit.Options{PerfMap: *perfMap, StrictFlags: *strict, MaxBlocks: *maxBlocks})
	if err != nil {
		fmt.Fprintf(stderr, "reachvm run: %v\n", err)
		return 125
	}
	defer m.Close()
	prog := fs.Arg(0)
	p, err := m.LoadProgram(prog)
	if err != nil {
		fmt.Fprintf(stderr, "reachvm run: %v\n", err)
		return 126
	}
	code, err := p.Run(fs.Args(), os.Environ())
	if *stats {
		fmt.Fprintf(stderr, "reachvm run: %+v\n", m.Stats())
	}
	if err != nil {
		fmt.Fprintf(stderr, "reachvm run: %s: %v\n", prog, err)
		return 127
	}
	if err := p.Close(); err != nil {
		fmt.Fprintf(stderr, "reachvm run: closing %s: %v\n", prog, err)
	}
	return code
}

// Command reachvm drives reachvm's layers from the command line.
//
// Usage:
//
//	reachvm demo [--json] [--size N]   reserve vmcode, load a library into it, call it via rel32
//	reachvm load [flags] LIB [ARGS]    load a library privately into vmcode, call a symbol
//	reachvm maps                       print this process's annotated address-space map
//	reachvm run [flags] PROG [ARGS]    run a static executable under the binary translator
//	reachvm bench kernels [flags]      time the C kernels natively, translated, under valgrind and qemu
//	reachvm strategies [flags]         measure the reachability strategies A-F and the Linux ones
//	reachvm vmm [flags] [--json]       reserve vmcode and vmheap, print the placement decisions
package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// commands maps a subcommand to its implementation. Each returns the exit
// status.
var commands = map[string]func(args []string, stdout, stderr io.Writer) int{
	"demo":       cmdDemo,
	"load":       cmdLoad,
	"maps":       cmdMaps,
	"strategies": cmdStrategies,
	"vmm":        cmdVMM,

	"run":   cmdRun,
	"bench": cmdBench,
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "reachvm: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
	return cmd(args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: reachvm <command> [flags]

commands:
  demo [--json] [--size N]   reserve vmcode, load libdemo.so privately into it,
                             emit a stub that calls it with a rel32 call, run it
  load [--json] [--call SYMBOL] LIB [ARGS...]  load LIB privately into vmcode, show its binding, call SYMBOL
  maps                       print this process's address-space map, annotated
  run [flags] PROG [ARGS...] run the static executable PROG under the binary translator
  bench kernels [--json]     time the C kernels natively, under reachvm, valgrind and qemu
  strategies [--backend sim|linux] [--trials N] [--seed S] [--json] [--out DIR]  measure the reachability strategies A-F and the Linux ones
  vmm [--size N] [--base ADDR] [--max-offset N] [--near START-END|self]
      [--wx=BOOL] [--allow-elsewhere=BOOL] [--allow-smaller=BOOL] [--json]
                             reserve vmcode and vmheap, print the placement decisions
`)
}

// parseSize reads a byte count with an optional K, M or G suffix (powers of
// 1024) or a 0x prefix.
func parseSize(s string) (uintptr, error) {
	mult := uint64(1)
	t := strings.TrimSpace(s)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'k', 'K':
			mult, t = 1<<10, t[:n-1]
		case 'm', 'M':
			mult, t = 1<<20, t[:n-1]
		case 'g', 'G':
			mult, t = 1<<30, t[:n-1]
		}
	}
	v, err := strconv.ParseUint(t, 0, 64)
	if err != nil {
		return 0, fmt.Errorf("bad size %q: want a number with an optional K, M or G suffix", s)
	}
	if v > (1<<63)/mult {
		return 0, fmt.Errorf("bad size %q: too large", s)
	}
	return uintptr(v * mult), nil
}

// sizeFlag is a flag.Value for byte counts.
type sizeFlag struct{ v *uintptr }

func (f sizeFlag) String() string {
	if f.v == nil {
		return "0"
	}
	return fmt.Sprintf("%#x", *f.v)
}

func (f sizeFlag) Set(s string) error {
	v, err := parseSize(s)
	if err == nil {
		*f.v = v
	}
	return err
}

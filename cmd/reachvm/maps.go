package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/reachvm/reachvm/vmm"
)

// cmdMaps prints the process's own map. It reserves vmcode first so that
// the map shows what reachvm owns next to everything else.
func cmdMaps(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("maps", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var size uintptr = vmm.DefaultVMCodeSize
	fs.Var(sizeFlag{&size}, "size", "vmcode size (bytes, or with K/M/G suffix)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	v, err := vmm.New(vmm.Config{VMCodeSize: size})
	if err != nil {
		fmt.Fprintln(stderr, "reachvm maps:", err)
		return 1
	}
	defer v.Close()
	space := v.Space()
	if err := space.Refresh(v.OS()); err != nil {
		fmt.Fprintln(stderr, "reachvm maps:", err)
		return 1
	}
	lo, hi := v.OS().Bounds()
	if err := space.WriteMaps(stdout, lo, hi); err != nil {
		fmt.Fprintln(stderr, "reachvm maps:", err)
		return 1
	}
	return 0
}

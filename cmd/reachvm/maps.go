package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/reachvm/reachvm/privload"
	"github.com/reachvm/reachvm/vmm"
)

const mapsSynopsis = "maps [--size N] [--load LIB]..."

const mapsAbout = `Reserves vmcode and vmheap, loads each --load LIB privately into vmcode,
and prints this process's whole address-space map as aspacem keeps it, in
/proc/self/maps format, each line reachvm owns annotated in brackets:
[vmcode], [vmcode rw alias] (the writable view of W^X vmcode), [vmheap],
and [privlib NAME] for each library loaded. On Windows the map is
VirtualQuery's, and vmcode is a grid of N reservations of 640 KiB: a slot
that holds something is annotated by what (a library, [fcache] for a code
unit's executable view, [grid slot I/N] for the rest of a slot), and each
run of idle slots I to J is one line, [grid slots I-J/N].`

// stringsFlag is a repeatable flag.Value: each use appends one string.
type stringsFlag struct{ v *[]string }

func (f *stringsFlag) String() string {
	if f == nil || f.v == nil {
		return ""
	}
	return strings.Join(*f.v, " ")
}

func (f *stringsFlag) Set(s string) error {
	if s == "" {
		return fmt.Errorf("empty path")
	}
	*f.v = append(*f.v, s)
	return nil
}

// cmdMaps prints the process's own map. It reserves vmcode first, and
// loads the libraries asked for, so that the map shows what reachvm owns
// next to everything else.
func cmdMaps(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("maps")
	var size uintptr = vmm.DefaultVMCodeSize
	fs.Var(&sizeFlag{v: &size, rule: vmcodeRule}, "size", sizeUsage)
	var libs []string
	fs.Var(&stringsFlag{&libs}, "load", "load the shared library at `LIB` privately into vmcode first (repeatable), as 'reachvm load' does, so that the map shows it as [privlib NAME]")
	if status, ok := parse("maps", fs, args, stdout, stderr); !ok {
		return status
	}
	if fs.NArg() != 0 {
		return fail(stderr, "maps", badUsage("unexpected arguments %q", fs.Args()))
	}
	v, err := vmm.New(vmm.Config{VMCodeSize: size})
	if err != nil {
		return fail(stderr, "maps", err)
	}
	defer v.Close()
	for _, path := range libs {
		lib, err := privload.Load(v, path, privload.Options{})
		if err != nil {
			return fail(stderr, "maps", err)
		}
		defer lib.Close()
	}
	space := v.Space()
	if err := space.Refresh(v.OS()); err != nil {
		return fail(stderr, "maps", err)
	}
	lo, hi := v.OS().Bounds()
	if err := v.WriteMaps(stdout, lo, hi); err != nil {
		return fail(stderr, "maps", err)
	}
	return 0
}

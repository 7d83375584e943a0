package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	"github.com/reachvm/reachvm/privload"
	"github.com/reachvm/reachvm/vmm"
)

// loadReport is what `reachvm load --json` prints: the library loaded
// (its fields at the top level), every library of its group, and the
// call's result.
type loadReport struct {
	loadLib
	VMCodeBase uint64 `json:"vmcode_base"`
	VMCodeSize uint64 `json:"vmcode_size"`
	// Libraries lists the group: the library, then its private
	// dependencies breadth-first.
	Libraries []loadLib `json:"libraries"`
	Call      string    `json:"call,omitempty"`
	Args      []string  `json:"args"`
	// Result is the called function's integer result (RAX), null
	// without --call.
	Result *int64 `json:"result"`
}

type loadLib struct {
	Name         string        `json:"name"`
	Path         string        `json:"path"`
	Base         uint64        `json:"base"`
	Size         uint64        `json:"size"`
	Segments     []loadSeg     `json:"segments"`
	Dependencies []loadDep     `json:"dependencies"`
	Imports      []loadImport  `json:"imports"`
	Versions     []loadVersion `json:"versions"`
}

type loadSeg struct {
	Start      uint64 `json:"start"`
	End        uint64 `json:"end"`
	Prot       string `json:"prot"`
	FileOffset uint64 `json:"file_offset"`
	FileEnd    uint64 `json:"file_end"`
	RelroStart uint64 `json:"relro_start,omitempty"`
	RelroEnd   uint64 `json:"relro_end,omitempty"`
}

type loadDep struct {
	Name string `json:"name"`
	// How is "private" (loaded into vmcode) or "host" (the host's copy).
	How  string `json:"how"`
	Path string `json:"path"`
	Base uint64 `json:"base,omitempty"`
}

type loadImport struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	BoundTo uint64 `json:"bound_to"`
	How     string `json:"how"`
	From    string `json:"from,omitempty"`
}

type loadVersion struct {
	Name    string `json:"name"`
	File    string `json:"file,omitempty"`
	Defined bool   `json:"defined"`
}

const loadSynopsis = "load [--json] [--call SYMBOL] [--search DIRS] [--no-init] [--size N] LIB [ARGS...]"

const loadAbout = `Loads the shared library LIB privately into a fresh vmcode, with its
private dependencies; system libraries bind to this process's own copies.
Prints where each segment went, each dependency and how every imported
symbol was bound, and, with --call, calls SYMBOL with ARGS (integers:
decimal, 0x hex, negative; str:TEXT passes a pointer to the NUL-terminated
TEXT) and prints its integer result. With --json it prints one object: the
library's name, path, base, size, segments, dependencies, imports and
versions at the top level, then vmcode_base, vmcode_size, libraries (the
library and its private dependencies, each with the same fields), call,
args and result (null without --call). Every list is [] when empty.`

func cmdLoad(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("load")
	asJSON := fs.Bool("json", false, "print one JSON object instead of text")
	callSym := fs.String("call", "", "call the exported function `SYMBOL` with ARGS, as func(long, ...) long")
	search := fs.String("search", "", "`DIRS`, colon-separated, to search for private dependencies before the system's")
	noInit := fs.Bool("no-init", false, "do not run the initialisers (nor, at unload, the finalisers)")
	size := uintptr(256 << 20)
	fs.Var(&sizeFlag{v: &size, rule: vmcodeRule}, "size", sizeUsage)
	if status, ok := parse("load", fs, args, stdout, stderr); !ok {
		return status
	}
	if fs.NArg() < 1 {
		return fail(stderr, "load", badUsage("missing LIB"))
	}
	path, rest := fs.Arg(0), fs.Args()[1:]
	if len(rest) > 0 && *callSym == "" {
		return fail(stderr, "load", badUsage("arguments %q given without --call", rest))
	}
	callArgs, keep, err := parseCallArgs(rest)
	if err != nil {
		return fail(stderr, "load", badUsage("%v", err))
	}

	v, err := vmm.New(vmm.Config{VMCodeSize: size})
	if err != nil {
		fmt.Fprintln(stderr, "reachvm load:", err)
		return 1
	}
	defer v.Close()
	opts := privload.Options{SkipInit: *noInit}
	if *search != "" {
		opts.SearchPath = strings.Split(*search, ":")
	}
	lib, err := privload.Load(v, path, opts)
	if err != nil {
		fmt.Fprintln(stderr, "reachvm load:", err)
		return 1
	}
	defer lib.Close()

	base, vsize := v.VMCode()
	rep := loadReport{loadLib: describe(lib), VMCodeBase: uint64(base), VMCodeSize: uint64(vsize), Libraries: []loadLib{}, Args: []string{}}
	for _, l := range lib.Libraries() {
		rep.Libraries = append(rep.Libraries, describe(l))
	}
	if *callSym != "" {
		fn, err := lib.Func(*callSym)
		if err != nil {
			fmt.Fprintln(stderr, "reachvm load:", err)
			return 1
		}
		ret, err := fn.Call(callArgs...)
		runtime.KeepAlive(keep)
		if err != nil {
			fmt.Fprintln(stderr, "reachvm load:", err)
			return 1
		}
		r := int64(ret)
		rep.Call, rep.Args, rep.Result = *callSym, append(rep.Args, rest...), &r
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintln(stderr, "reachvm load:", err)
			return 1
		}
		return 0
	}
	printLoad(stdout, &rep)
	return 0
}

// parseCallArgs reads the integer (or str:TEXT) arguments of --call. The
// strings' bytes are returned too, to keep alive across the call.
func parseCallArgs(args []string) ([]uintptr, [][]byte, error) {
	var out []uintptr
	var keep [][]byte
	for _, a := range args {
		if s, ok := strings.CutPrefix(a, "str:"); ok {
			b := append([]byte(s), 0)
			keep = append(keep, b)
			out = append(out, uintptr(unsafe.Pointer(&b[0])))
			continue
		}
		if v, err := strconv.ParseInt(a, 0, 64); err == nil {
			out = append(out, uintptr(v))
			continue
		}
		v, err := strconv.ParseUint(a, 0, 64)
		if err != nil {
			return nil, nil, fmt.Errorf("bad argument %q: want an integer (decimal, 0x hex) or str:TEXT", a)
		}
		out = append(out, uintptr(v))
	}
	return out, keep, nil
}

// describe reports one loaded library.
func describe(l *privload.Library) loadLib {
	// Every list is [] when empty, never null: a reader iterates it
	// without a check.
	d := loadLib{Name: l.Name(), Path: l.Path(), Base: uint64(l.Base()), Size: uint64(l.Size()),
		Segments: []loadSeg{}, Dependencies: []loadDep{}, Imports: []loadImport{}, Versions: []loadVersion{}}
	for _, s := range l.Segments() {
		d.Segments = append(d.Segments, loadSeg{Start: uint64(s.Start), End: uint64(s.End), Prot: s.Prot.String(),
			FileOffset: s.FileOffset, FileEnd: uint64(s.FileEnd), RelroStart: uint64(s.RelroStart), RelroEnd: uint64(s.RelroEnd)})
	}
	for _, dep := range l.Dependencies() {
		ld := loadDep{Name: dep.Name, How: "private", Path: dep.Path}
		if dep.Host {
			ld.How = "host"
		} else if dep.Library != nil {
			ld.Base = uint64(dep.Library.Base())
		}
		d.Dependencies = append(d.Dependencies, ld)
	}
	for _, im := range l.Imports() {
		d.Imports = append(d.Imports, loadImport{Name: im.Name, Version: im.Version, BoundTo: uint64(im.BoundTo), How: im.How, From: im.From})
	}
	if f := l.File(); f != nil {
		for _, v := range f.Versions {
			if v.Name != "" {
				d.Versions = append(d.Versions, loadVersion{Name: v.Name, File: v.File, Defined: v.Defined})
			}
		}
	}
	return d
}

func printLoad(w io.Writer, r *loadReport) {
	fmt.Fprintf(w, "vmcode [%#x, %#x) (%d MiB)\n", r.VMCodeBase, r.VMCodeBase+r.VMCodeSize, r.VMCodeSize>>20)
	for _, l := range r.Libraries {
		fmt.Fprintf(w, "\n%s (%s)\n  slot [%#x, %#x) %d KiB, in vmcode\n", l.Name, l.Path, l.Base, l.Base+l.Size, l.Size>>10)
		fmt.Fprintln(w, "  segments:")
		for _, s := range l.Segments {
			fmt.Fprintf(w, "    [%#x, %#x) %s  file %#x", s.Start, s.End, s.Prot, s.FileOffset)
			if s.FileEnd < s.End {
				fmt.Fprintf(w, ", .bss from %#x", s.FileEnd)
			}
			if s.RelroEnd > s.RelroStart {
				fmt.Fprintf(w, ", RELRO [%#x, %#x) r--", s.RelroStart, s.RelroEnd)
			}
			fmt.Fprintln(w)
		}
		if len(l.Dependencies) > 0 {
			fmt.Fprintln(w, "  dependencies:")
			for _, d := range l.Dependencies {
				switch d.How {
				case "host":
					fmt.Fprintf(w, "    %-28s host's own copy (dlopen)\n", d.Name)
				default:
					fmt.Fprintf(w, "    %-28s private at %#x (%s)\n", d.Name, d.Base, d.Path)
				}
			}
		}
		fmt.Fprintf(w, "  imports (%d):\n", len(l.Imports))
		for _, im := range l.Imports {
			name := im.Name
			if im.Version != "" {
				name += "@" + im.Version
			}
			how := im.How
			if im.From != "" {
				how += " " + im.From
			}
			fmt.Fprintf(w, "    %-36s %#14x  %s\n", name, im.BoundTo, how)
		}
	}
	if r.Result != nil {
		fmt.Fprintf(w, "\n%s(%s) = %d (%#x)\n", r.Call, strings.Join(r.Args, ", "), *r.Result, uint64(*r.Result))
	}
}

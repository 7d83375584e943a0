package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/arch/x86/x86asm"

	"github.com/reachvm/reachvm/internal/demolib"
	"github.com/reachvm/reachvm/jit"
	"github.com/reachvm/reachvm/privload"
	"github.com/reachvm/reachvm/vmcode"
	"github.com/reachvm/reachvm/vmm"
)

// demoReport is what `reachvm demo --json` prints: one object.
type demoReport struct {
	VMCodeBase     uint64       `json:"vmcode_base"`
	VMCodeSize     uint64       `json:"vmcode_size"`
	Lib            string       `json:"lib"`
	LibBase        uint64       `json:"lib_base"`
	LibSize        uint64       `json:"lib_size"`
	LibSegments    []demoSeg    `json:"lib_segments"`
	Func           string       `json:"func"`
	FuncAddr       uint64       `json:"func_addr"`
	StubAddr       uint64       `json:"stub_addr"`
	StubDisasm     []demoInst   `json:"stub_disasm"`
	CallAddr       uint64       `json:"call_addr"`
	CallBytes      string       `json:"call_bytes"`
	CallRel32      int32        `json:"call_rel32"`
	Args           []int64      `json:"args"`
	Result         int64        `json:"result"`
	Expected       int64        `json:"expected"`
	SyncMismatches int          `json:"sync_mismatches"`
	Mismatches     []string     `json:"mismatches"`
	Maps           []string     `json:"maps"`
	Imports        []demoImport `json:"imports"`
}

type demoSeg struct {
	Start uint64 `json:"start"`
	End   uint64 `json:"end"`
	Prot  string `json:"prot"`
}

type demoInst struct {
	Addr  uint64 `json:"addr"`
	Bytes string `json:"bytes"`
	Text  string `json:"text"`
}

type demoImport struct {
	Name    string `json:"name"`
	BoundTo uint64 `json:"bound_to"`
	How     string `json:"how"`
}

// demoArgs are the arguments demo_compute is called with.
var demoArgs = [2]int64{6, 7}

const demoSynopsis = "demo [--json] [--size N]"

const demoAbout = `The end-to-end walk: reserves vmcode, writes libdemo.so (built into
reachvm) to a temporary file and loads it privately into a vmcode slot,
emits a stub whose E8 rel32 call reaches the library's demo_compute, runs
the stub, and checks aspacem's map against the kernel's. Prints each step,
the stub's disassembly and the annotated map of vmcode ([vmcode], [privlib
libdemo.so]). With --json it prints one object: vmcode_base, vmcode_size,
lib, lib_base, lib_size, lib_segments, func, func_addr, stub_addr,
stub_disasm, call_addr, call_bytes, call_rel32, args, result, expected,
sync_mismatches, mismatches, maps and imports (every list is [] when
empty). Exits 1 if the result is wrong or aspacem disagrees with the
kernel. libdemo.so is an ELF library: Linux only.`

// sizeUsage is the text of every vmcode --size flag.
var sizeUsage = "vmcode's size `N`: " + vmcodeRule.text() + " (the rel32 window)"

func cmdDemo(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("demo")
	asJSON := fs.Bool("json", false, "print one JSON object instead of text")
	var size uintptr = vmm.DefaultVMCodeSize
	fs.Var(&sizeFlag{v: &size, rule: vmcodeRule}, "size", sizeUsage)
	if status, ok := parse("demo", fs, args, stdout, stderr); !ok {
		return status
	}
	if fs.NArg() != 0 {
		return fail(stderr, "demo", badUsage("unexpected arguments %q", fs.Args()))
	}
	if runtime.GOOS != "linux" {
		// Said before reserving vmcode and writing the library out, not
		// as privload's "not a PE file" after.
		fmt.Fprintf(stderr, "reachvm demo: %s is an ELF library: the demo runs on Linux only\n", demolib.Name)
		return 1
	}
	rep, err := runDemo(size)
	if err != nil {
		fmt.Fprintln(stderr, "reachvm demo:", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintln(stderr, "reachvm demo:", err)
			return 1
		}
	} else {
		printDemo(stdout, rep)
	}
	if rep.Result != rep.Expected || rep.SyncMismatches != 0 {
		return 1
	}
	return 0
}

// runDemo does the whole walk: reserve vmcode, load libdemo.so privately
// into a vmcode slot, emit a stub whose E8 rel32 call reaches the library's
// function, run it from Go, and check aspacem against the kernel.
func runDemo(size uintptr) (rep *demoReport, err error) {
	v, err := vmm.New(vmm.Config{VMCodeSize: size})
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := v.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	base, vsize := v.VMCode()
	rep = &demoReport{VMCodeBase: uint64(base), VMCodeSize: uint64(vsize), Lib: demolib.Name, Func: demolib.Compute,
		LibSegments: []demoSeg{}, Imports: []demoImport{}, Mismatches: []string{}, Maps: []string{}}

	// The library lives in a temporary file for as long as it is mapped,
	// so that the kernel's maps name it by its path.
	dir, err := os.MkdirTemp("", "reachvm-demo-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, demolib.Name)
	if err := os.WriteFile(path, demolib.SO, 0o755); err != nil {
		return nil, err
	}
	lib, err := privload.Load(v, path, privload.Options{})
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := lib.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	rep.LibBase, rep.LibSize = uint64(lib.Base()), uint64(lib.Size())
	for _, s := range lib.Segments() {
		rep.LibSegments = append(rep.LibSegments, demoSeg{Start: uint64(s.Start), End: uint64(s.End), Prot: s.Prot.String()})
	}
	for _, im := range lib.Imports() {
		rep.Imports = append(rep.Imports, demoImport{Name: im.Name, BoundTo: uint64(im.BoundTo), How: im.How})
	}
	fn, ok := lib.Lookup(demolib.Compute)
	if !ok {
		return nil, fmt.Errorf("%s does not export %s", demolib.Name, demolib.Compute)
	}
	rep.FuncAddr = uint64(fn)

	stub, err := jit.EmitCallStub(vmcode.New(v), fn)
	if err != nil {
		return nil, err
	}
	defer func() {
		if ferr := stub.Free(); ferr != nil && err == nil {
			err = ferr
		}
	}()
	rep.StubAddr = uint64(stub.Addr)
	rep.StubDisasm = disassemble(stub.Code, stub.Addr)
	call := stub.Code[stub.CallOffset : stub.CallOffset+5]
	rep.CallAddr = uint64(stub.Addr) + uint64(stub.CallOffset)
	rep.CallBytes = hex.EncodeToString(call)
	rep.CallRel32 = int32(uint32(call[1]) | uint32(call[2])<<8 | uint32(call[3])<<16 | uint32(call[4])<<24)

	rep.Args = demoArgs[:]
	rep.Result = int64(jit.Call(stub.Addr, uintptr(demoArgs[0]), uintptr(demoArgs[1])))
	rep.Expected = demolib.Expected(demoArgs[0], demoArgs[1])

	mism, err := v.Space().SyncCheck(v.OS())
	if err != nil {
		return nil, err
	}
	rep.SyncMismatches = len(mism)
	for _, m := range mism {
		rep.Mismatches = append(rep.Mismatches, m.String())
	}
	var maps bytes.Buffer
	if err := v.Space().WriteMaps(&maps, base, base+vsize); err != nil {
		return nil, err
	}
	rep.Maps = strings.Split(strings.TrimRight(maps.String(), "\n"), "\n")
	return rep, nil
}

// disassemble decodes code placed at pc with x86asm, in Intel syntax.
func disassemble(code []byte, pc uintptr) []demoInst {
	out := []demoInst{}
	for off := 0; off < len(code); {
		inst, err := x86asm.Decode(code[off:], 64)
		n := inst.Len
		text := ""
		if err != nil || n == 0 {
			n, text = 1, "(bad)"
		} else {
			text = x86asm.IntelSyntax(inst, uint64(pc)+uint64(off), nil)
		}
		out = append(out, demoInst{Addr: uint64(pc) + uint64(off), Bytes: hex.EncodeToString(code[off : off+n]), Text: text})
		off += n
	}
	return out
}

func printDemo(w io.Writer, r *demoReport) {
	fmt.Fprintf(w, "reachvm demo: vmcode reserved, %s loaded privately into it, called through an emitted rel32 call\n\n", r.Lib)
	fmt.Fprintf(w, "vmcode      %#x-%#x  (%d MiB)\n", r.VMCodeBase, r.VMCodeBase+r.VMCodeSize, r.VMCodeSize>>20)
	fmt.Fprintf(w, "%-11s %#x-%#x  (vmcode+%#x, %d KiB)\n", r.Lib, r.LibBase, r.LibBase+r.LibSize, r.LibBase-r.VMCodeBase, r.LibSize>>10)
	for _, s := range r.LibSegments {
		fmt.Fprintf(w, "            %#x-%#x %s\n", s.Start, s.End, s.Prot)
	}
	for _, im := range r.Imports {
		fmt.Fprintf(w, "  import %-20s -> %#x (%s)\n", im.Name, im.BoundTo, im.How)
	}
	fmt.Fprintf(w, "%-11s %#x  (vmcode+%#x)\n", r.Func, r.FuncAddr, r.FuncAddr-r.VMCodeBase)
	fmt.Fprintf(w, "stub        %#x  (vmcode+%#x, %d bytes from %s)\n", r.StubAddr, r.StubAddr-r.VMCodeBase, int64(r.StubAddr)-int64(r.FuncAddr), r.Func)
	for _, in := range r.StubDisasm {
		mark := ""
		if in.Addr == r.CallAddr {
			mark = fmt.Sprintf("   <- E8 rel32 %+#x", r.CallRel32)
		}
		fmt.Fprintf(w, "  %#x  %-14s %s%s\n", in.Addr, in.Bytes, in.Text, mark)
	}
	verdict := "ok"
	if r.Result != r.Expected {
		verdict = "WRONG"
	}
	fmt.Fprintf(w, "\nresult      %s(%d, %d) = %d, expected %d: %s\n", r.Func, r.Args[0], r.Args[1], r.Result, r.Expected, verdict)
	fmt.Fprintf(w, "sync check  %d mismatches between aspacem and /proc/self/maps\n", r.SyncMismatches)
	for _, m := range r.Mismatches {
		fmt.Fprintln(w, "  ", m)
	}
	fmt.Fprintf(w, "\nmaps of vmcode (annotated):\n")
	for _, l := range r.Maps {
		fmt.Fprintln(w, "  "+l)
	}
}

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

// demoReport is what `reachvm demo --json` prints: one object. The fields
// are the same on every OS; on Windows vmcode is the grid of slot
// reservations, and the grid fields describe it.
type demoReport struct {
	VMCodeBase uint64 `json:"vmcode_base"`
	VMCodeSize uint64 `json:"vmcode_size"`
	// Placement is how vmcode was placed (vmm.Placement.How: "os" on
	// Linux, "grid" on Windows).
	Placement string `json:"placement"`
	// WX says whether vmcode is W^X: the stub is written at a writable
	// view and run from the executable one.
	WX bool `json:"wx"`
	// GridSlots and GridSlotSize describe the grid on Windows; 0 for
	// linear vmcode.
	GridSlots    int    `json:"grid_slots"`
	GridSlotSize uint64 `json:"grid_slot_size"`
	Lib          string `json:"lib"`
	LibBase      uint64 `json:"lib_base"`
	LibSize      uint64 `json:"lib_size"`
	// LibInVMCode says the library's whole image lies inside vmcode: on
	// Windows, in grid slots.
	LibInVMCode    bool         `json:"lib_in_vmcode"`
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

const demoAbout = `The end-to-end walk: reserves vmcode, writes the demo library (built into
reachvm: libdemo.so on Linux, demo.dll on Windows) to a temporary file and
loads it privately into a vmcode slot (on Windows, into slots of the grid
of 640 KiB reservations vmcode is made of), emits a stub into another
slot whose E8 rel32 call reaches the library's demo_compute, runs the stub
(through the W^X views when vmcode is W^X), and checks aspacem's map
against the OS's (/proc/self/maps, VirtualQuery). Prints each step, the
stub's disassembly and the annotated map of vmcode ([vmcode], [privlib
NAME]; on Windows runs of grid slots are one line each). With --json it
prints one object: vmcode_base, vmcode_size, placement, wx, grid_slots
and grid_slot_size (0 without a grid), lib, lib_base, lib_size,
lib_in_vmcode, lib_segments, func, func_addr, stub_addr, stub_disasm,
call_addr, call_bytes, call_rel32, args, result, expected,
sync_mismatches, mismatches, maps and imports (every list is [] when
empty). Exits 1 if the result is wrong, the library lies outside vmcode
or aspacem disagrees with the OS. Linux and Windows only.`

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
	name, image, ok := demoLibrary()
	if !ok {
		// Said before reserving vmcode, not as privload's refusal after.
		fmt.Fprintf(stderr, "reachvm demo: no demo library for %s: the demo runs on Linux (%s) and Windows (%s)\n", runtime.GOOS, demolib.Name, demolib.DLLName)
		return 1
	}
	rep, err := runDemo(size, name, image)
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
	if rep.Result != rep.Expected || rep.SyncMismatches != 0 || !rep.LibInVMCode {
		return 1
	}
	return 0
}

// demoLibrary returns the demo library of this OS: its file name and
// contents. ok is false on an OS privload cannot load either on.
func demoLibrary() (name string, image []byte, ok bool) {
	switch runtime.GOOS {
	case "linux":
		return demolib.Name, demolib.SO, true
	case "windows":
		return demolib.DLLName, demolib.DLL, true
	}
	return "", nil, false
}

// runDemo does the whole walk: reserve vmcode, load the library called name
// (whose contents are image) privately into a vmcode slot, emit a stub
// whose E8 rel32 call reaches the library's function, run it from Go, and
// check aspacem against the OS.
func runDemo(size uintptr, name string, image []byte) (rep *demoReport, err error) {
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
	rep = &demoReport{VMCodeBase: uint64(base), VMCodeSize: uint64(vsize), Placement: v.Placement().How, WX: v.WX(),
		Lib: name, Func: demolib.Compute, LibSegments: []demoSeg{}, Imports: []demoImport{}, Mismatches: []string{}, Maps: []string{}}
	if st, ok := v.Grid(); ok {
		rep.GridSlots, rep.GridSlotSize = st.Slots, uint64(st.SlotSize)
	}

	// The library lives in a temporary file for as long as it is loaded,
	// so that the kernel's maps name it by its path (on Linux, where it
	// is mapped from the file) and privload finds it by path.
	dir, err := os.MkdirTemp("", "reachvm-demo-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, image, 0o755); err != nil {
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
	rep.LibInVMCode = v.InVMCode(lib.Start(), lib.Size())
	for _, s := range lib.Segments() {
		rep.LibSegments = append(rep.LibSegments, demoSeg{Start: uint64(s.Start), End: uint64(s.End), Prot: s.Prot.String()})
	}
	for _, im := range lib.Imports() {
		rep.Imports = append(rep.Imports, demoImport{Name: im.Name, BoundTo: uint64(im.BoundTo), How: im.How})
	}
	fn, ok := lib.Lookup(demolib.Compute)
	if !ok {
		return nil, fmt.Errorf("%s does not export %s", name, demolib.Compute)
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
	if err := v.WriteMaps(&maps, base, base+vsize); err != nil {
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
	fmt.Fprintf(w, "vmcode      %#x-%#x  (%d MiB, placed by %q, W^X %v)\n", r.VMCodeBase, r.VMCodeBase+r.VMCodeSize, r.VMCodeSize>>20, r.Placement, r.WX)
	if r.GridSlots != 0 {
		fmt.Fprintf(w, "            a grid of %d reservations of %d KiB\n", r.GridSlots, r.GridSlotSize>>10)
	}
	where := "inside vmcode"
	if !r.LibInVMCode {
		where = "NOT inside vmcode"
	}
	fmt.Fprintf(w, "%-11s %#x-%#x  (vmcode+%#x, %d KiB, %s)\n", r.Lib, r.LibBase, r.LibBase+r.LibSize, r.LibBase-r.VMCodeBase, r.LibSize>>10, where)
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
	fmt.Fprintf(w, "sync check  %d mismatches between aspacem and %s\n", r.SyncMismatches, osMapName())
	for _, m := range r.Mismatches {
		fmt.Fprintln(w, "  ", m)
	}
	fmt.Fprintf(w, "\nmaps of vmcode (annotated):\n")
	for _, l := range r.Maps {
		fmt.Fprintln(w, "  "+l)
	}
}

// osMapName names the OS's view of the address space that aspacem is
// checked against.
func osMapName() string {
	if runtime.GOOS == "windows" {
		return "VirtualQuery"
	}
	return "/proc/self/maps"
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/reachvm/reachvm/aspacem"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
)

// vmmReport is what `reachvm vmm --json` prints.
type vmmReport struct {
	VMCodeBase    uint64   `json:"vmcode_base"`
	VMCodeSize    uint64   `json:"vmcode_size"`
	VMHeapBase    uint64   `json:"vmheap_base"`
	VMHeapSize    uint64   `json:"vmheap_size"`
	WX            bool     `json:"wx"`
	Placement     string   `json:"placement"`
	Fallbacks     []string `json:"fallbacks"`
	RequestedBase uint64   `json:"requested_base"`
	RequestedSize uint64   `json:"requested_size"`
	Offset        uint64   `json:"offset"`
	Near          []uint64 `json:"near,omitempty"`
	Attempts      int      `json:"attempts"`
	PlaceNanos    int64    `json:"place_ns"`
	Backend       string   `json:"backend"`
}

const vmmSynopsis = "vmm [--size N] [--base ADDR [--max-offset N]] [--near START-END|self] [--wx=on|off|auto] [--allow-elsewhere=BOOL] [--allow-smaller=BOOL] [--json]"

const vmmAbout = `Reserves vmcode and vmheap as vmm.New does and prints the placement
decisions: where vmcode went and how its base was chosen (by the OS, at
--base plus a random offset below --max-offset, or --near a range), every
fallback taken (another base, a smaller size), vmheap, and whether vmcode
is W^X. With --json it prints one object: vmcode_base, vmcode_size,
vmheap_base, vmheap_size, wx, placement, fallbacks ([] when none),
requested_base, requested_size, offset, near (with --near), attempts,
place_ns and backend. --near self places vmcode within rel32 reach of the
reachvm binary's own text, as aspacem's map of the process shows it.`

func cmdVMM(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("vmm")
	var cfg vmm.Config
	cfg.VMCodeSize = vmm.DefaultVMCodeSize
	fs.Var(&sizeFlag{v: &cfg.VMCodeSize, rule: vmcodeRule}, "size", sizeUsage)
	baseF := &addrFlag{v: &cfg.VMCodeBase, align: granularity}
	fs.Var(baseF, "base", "where vmcode must start, `ADDR`: a non-zero multiple of "+sizeText(granularity)+", below the top of the user address space (default: the OS chooses)")
	maxOff := &sizeFlag{v: &cfg.VMCodeMaxOffset, rule: sizeRule{Multiple: granularity}}
	fs.Var(maxOff, "max-offset", "with --base: add a random offset in [0, `N`) to it, N a non-zero multiple of "+sizeText(granularity))
	near := fs.String("near", "", "place vmcode within rel32 reach of `START-END` (hex addresses, START < END), or of self: this executable's text; excludes --base")
	fs.Var(&cfg.WX, "wx", "W^X: vmcode mapped twice, executable and writable views apart; on, off or auto (auto: on where the platform allows it)")
	fs.BoolVar(&cfg.AllowElsewhere, "allow-elsewhere", true, "if --base is taken, let the OS choose (reported as a fallback)")
	fs.BoolVar(&cfg.AllowSmaller, "allow-smaller", true, "shrink vmcode by 1/16 a try, down to 16M, when it does not fit (reported as a fallback)")
	asJSON := fs.Bool("json", false, "print one JSON object instead of text")
	if status, ok := parse("vmm", fs, args, stdout, stderr); !ok {
		return status
	}
	if fs.NArg() != 0 {
		return fail(stderr, "vmm", badUsage("unexpected arguments %q", fs.Args()))
	}
	if maxOff.set && !baseF.set {
		return fail(stderr, "vmm", badUsage("--max-offset needs --base: the offset is added to it"))
	}
	if baseF.set {
		// The highest vmcode the flags allow must end within the user
		// address space, not wrap.
		if end := uint64(cfg.VMCodeBase) + uint64(cfg.VMCodeMaxOffset) + uint64(cfg.VMCodeSize); end > userTop || end < uint64(cfg.VMCodeBase) {
			return fail(stderr, "vmm", badUsage("--base %#x + --max-offset %s + --size %s ends past %#x, the top of the user address space",
				cfg.VMCodeBase, sizeText(cfg.VMCodeMaxOffset), sizeText(cfg.VMCodeSize), uint64(userTop)))
		}
	}
	if *near != "" {
		if baseF.set {
			return fail(stderr, "vmm", badUsage("--near and --base exclude each other: --near chooses the base"))
		}
		r, err := parseNear(*near)
		if err != nil {
			return fail(stderr, "vmm", badUsage("%v", err))
		}
		cfg.Near = &r
	}
	start := time.Now()
	v, err := vmm.New(cfg)
	elapsed := time.Since(start)
	if err != nil {
		return fail(stderr, "vmm", err)
	}
	defer v.Close()
	base, size := v.VMCode()
	hbase, hsize := v.VMHeap()
	p := v.Placement()
	rep := vmmReport{
		VMCodeBase: uint64(base), VMCodeSize: uint64(size),
		VMHeapBase: uint64(hbase), VMHeapSize: uint64(hsize),
		WX: v.WX(), Placement: p.How, Fallbacks: p.Fallbacks,
		RequestedBase: uint64(p.RequestedBase), RequestedSize: uint64(p.RequestedSize),
		Offset: uint64(p.Offset), Attempts: p.Attempts, PlaceNanos: elapsed.Nanoseconds(),
		Backend: v.OS().Name(),
	}
	if rep.Fallbacks == nil {
		rep.Fallbacks = []string{}
	}
	if cfg.Near != nil {
		rep.Near = []uint64{uint64(cfg.Near.Start), uint64(cfg.Near.End)}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintln(stderr, "reachvm vmm:", err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(stdout, "vmcode     %#x-%#x  %d MiB, placed by %q in %d attempt(s), %v\n", base, base+size, size>>20, p.How, p.Attempts, elapsed.Round(time.Microsecond))
	if p.RequestedBase != 0 {
		fmt.Fprintf(stdout, "           requested base %#x, offset %#x\n", p.RequestedBase, p.Offset)
	}
	if cfg.Near != nil {
		fmt.Fprintf(stdout, "           near %#x-%#x: every byte of vmcode within rel32 reach of every byte of it\n", cfg.Near.Start, cfg.Near.End)
	}
	fmt.Fprintf(stdout, "vmheap     %#x-%#x  %d MiB\n", hbase, hbase+hsize, hsize>>20)
	fmt.Fprintf(stdout, "w^x        %v\n", v.WX())
	if len(p.Fallbacks) == 0 {
		fmt.Fprintln(stdout, "fallbacks  none")
	}
	for _, f := range p.Fallbacks {
		fmt.Fprintln(stdout, "fallback  ", f)
	}
	return 0
}

// parseNear reads START-END (hexadecimal addresses), or "self" for the
// text of the running executable.
func parseNear(s string) (mem.Range, error) {
	if s == "self" {
		return selfText()
	}
	lo, hi, ok := strings.Cut(s, "-")
	if !ok {
		return mem.Range{}, fmt.Errorf("--near %s: want START-END in hex, or self", s)
	}
	a, err := parseAddress(lo)
	if err == nil {
		var b uintptr
		if b, err = parseAddress(hi); err == nil {
			if b <= a {
				return mem.Range{}, fmt.Errorf("--near %s: want START < END", s)
			}
			return mem.Range{Start: a, End: b}, nil
		}
	}
	return mem.Range{}, fmt.Errorf("--near %s: %v", s, err)
}

// selfText finds this executable's text in aspacem's map of the process:
// the span of the executable mappings of the file os.Executable names.
// Only aspacem reads the kernel's map.
func selfText() (mem.Range, error) {
	exe, err := os.Executable()
	if err != nil {
		return mem.Range{}, fmt.Errorf("--near self: %v", err)
	}
	space, err := aspacem.LoadSelf()
	if err != nil {
		return mem.Range{}, fmt.Errorf("--near self: reading the address space: %v", err)
	}
	var r mem.Range
	for _, s := range space.SegmentsNamed(exe) {
		if s.Prot&mem.ProtExec == 0 {
			continue
		}
		if r.Empty() {
			r = mem.Range{Start: s.Start, End: s.End}
			continue
		}
		r.Start, r.End = min(r.Start, s.Start), max(r.End, s.End)
	}
	if r.Empty() {
		return mem.Range{}, fmt.Errorf("--near self: no executable mapping of %s in the address space", exe)
	}
	return r, nil
}

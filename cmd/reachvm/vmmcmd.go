package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

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

func cmdVMM(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("vmm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg vmm.Config
	cfg.VMCodeSize = vmm.DefaultVMCodeSize
	fs.Var(sizeFlag{&cfg.VMCodeSize}, "size", "vmcode size (bytes, or with K/M/G suffix)")
	fs.Var(sizeFlag{&cfg.VMCodeBase}, "base", "vmcode base address (0x...); default: the OS chooses")
	fs.Var(sizeFlag{&cfg.VMCodeMaxOffset}, "max-offset", "random offset added to --base, in [0, N)")
	near := fs.String("near", "", "place vmcode within rel32 reach of START-END (hex), or of \"self\": this executable's text")
	fs.Var(&cfg.WX, "wx", "W^X: vmcode dual-mapped, executable and writable views apart (default: on where the platform allows)")
	fs.BoolVar(&cfg.AllowElsewhere, "allow-elsewhere", true, "if --base is taken, let the OS choose (reported as a fallback)")
	fs.BoolVar(&cfg.AllowSmaller, "allow-smaller", true, "shrink vmcode by 1/16 a try when it does not fit (reported as a fallback)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "reachvm vmm: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *near != "" {
		r, err := parseNear(*near)
		if err != nil {
			fmt.Fprintln(stderr, "reachvm vmm:", err)
			return 2
		}
		cfg.Near = &r
	}
	start := time.Now()
	v, err := vmm.New(cfg)
	elapsed := time.Since(start)
	if err != nil {
		fmt.Fprintln(stderr, "reachvm vmm:", err)
		return 1
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

// parseNear reads START-END in hexadecimal, or "self" for the text of the
// running executable (its first executable mapping in /proc/self/maps).
func parseNear(s string) (mem.Range, error) {
	if s == "self" {
		return selfText()
	}
	lo, hi, ok := strings.Cut(s, "-")
	if !ok {
		return mem.Range{}, fmt.Errorf("bad --near %q: want START-END in hex, or self", s)
	}
	a, err1 := strconv.ParseUint(strings.TrimPrefix(lo, "0x"), 16, 64)
	b, err2 := strconv.ParseUint(strings.TrimPrefix(hi, "0x"), 16, 64)
	if err1 != nil || err2 != nil || b <= a {
		return mem.Range{}, fmt.Errorf("bad --near %q: want START-END in hex with START < END", s)
	}
	return mem.Range{Start: uintptr(a), End: uintptr(b)}, nil
}

// selfText finds this executable's text: the executable mappings of
// /proc/self/exe.
func selfText() (mem.Range, error) {
	exe, err := os.Executable()
	if err != nil {
		return mem.Range{}, err
	}
	data, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return mem.Range{}, fmt.Errorf("--near self needs /proc/self/maps: %v", err)
	}
	var r mem.Range
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || f[5] != exe || !strings.Contains(f[1], "x") {
			continue
		}
		lo, hi, _ := strings.Cut(f[0], "-")
		a, _ := strconv.ParseUint(lo, 16, 64)
		b, _ := strconv.ParseUint(hi, 16, 64)
		if r.End == 0 || uintptr(a) < r.Start {
			r.Start = uintptr(a)
		}
		r.End = max(r.End, uintptr(b))
	}
	if r.End == 0 {
		return mem.Range{}, fmt.Errorf("--near self: no executable mapping of %s in /proc/self/maps", exe)
	}
	return r, nil
}

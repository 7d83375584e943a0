package main

import (
	"flag"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// TestSizeFlag: the vmcode size rule on good and bad values, with the
// message each bad one gets once the flag package has wrapped it.
func TestSizeFlag(t *testing.T) {
	g := granularity
	for _, tc := range []struct {
		in   string
		want uintptr
		msg  string // "" for a good value
	}{
		// Multiples of 64K: good on Linux and on Windows alike.
		{"65536", 64 << 10, ""}, {"0x10000", 0x10000, ""}, {"0X20000", 0x20000, ""}, {"64K", 64 << 10, ""},
		{"16m", 16 << 20, ""}, {"512M", 512 << 20, ""}, {"2G", 2 << 30, ""}, {"2147483648", 2 << 30, ""},
		{"0", 0, "--size 0: must not be 0 (want a non-zero multiple of " + sizeText(g) + ", at most 2G)"},
		{"0x0", 0, "--size 0x0: must not be 0"},
		{"4G", 0, "--size 4G: past 2G, the most vmcode can be while every byte of it stays within rel32 reach of every other"},
		{"2147487744", 0, "--size 2147487744: past 2G"}, // 2G + 4K
		{"99999999999999", 0, "--size 99999999999999: past 2G"},
		{"99999999999G", 0, "--size 99999999999G: too large: past 64 bits"},
		{"18446744073709551616", 0, "--size 18446744073709551616: too large: past 64 bits"},
		{"4097", 0, "--size 4097: not a multiple of " + sizeText(g) + ", the allocation granularity"},
		{"12Q", 0, "--size 12Q: not a size: want a number of bytes, decimal or 0x hex, with an optional K, M or G suffix"},
		{"", 0, `--size "": not a size`},
		{"G", 0, "--size G: not a size"},
		{"-1", 0, "--size -1: not a size"},
		{"+4096", 0, "--size +4096: not a size"},
		{"1.5G", 0, "--size 1.5G: not a size"},
		{"0755", 755, ""}, // decimal, not octal: a multiple of nothing, refused below on Linux
		{"0x", 0, "--size 0x: not a size"},
	} {
		var v uintptr
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fs.Var(&sizeFlag{v: &v, rule: vmcodeRule}, "size", "")
		err := fs.Parse([]string{"--size", tc.in})
		if tc.in == "0755" {
			// 755 is no multiple of the granularity: the message says
			// so, which shows it was read as decimal 755.
			if err == nil || flagError(err) != "--size 0755: not a multiple of "+sizeText(g)+", the allocation granularity" {
				t.Errorf("--size 0755: %v", err)
			}
			continue
		}
		if tc.msg == "" {
			if err != nil || v != tc.want {
				t.Errorf("--size %s = %#x, %v; want %#x", tc.in, v, err, tc.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("--size %s accepted (%#x)", tc.in, v)
			continue
		}
		if got := flagError(err); !strings.HasPrefix(got, tc.msg) {
			t.Errorf("--size %s: %q, want it to start with %q", tc.in, got, tc.msg)
		}
	}
}

// TestAddrFlag: addresses are hexadecimal, with or without 0x, non-zero,
// granularity-aligned and below the top of the user address space.
func TestAddrFlag(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uintptr
		msg  string
	}{
		{"0x100000000000", 0x100000000000, ""}, {"100000000000", 0x100000000000, ""}, {"0x7f0000010000", 0x7f0000010000, ""},
		{"0X7F0000010000", 0x7f0000010000, ""},
		{"zzz", 0, "--base zzz: bad address: want hexadecimal, with or without 0x"},
		{"0x", 0, "--base 0x: bad address: want hexadecimal"},
		{"-0x1000", 0, "--base -0x1000: bad address: want hexadecimal"},
		{"0", 0, "--base 0: bad address: must not be 0"},
		{"0x1001", 0, "--base 0x1001: bad address: not a multiple of " + sizeText(granularity)},
		{"0x800000000000", 0, "--base 0x800000000000: bad address: at or past 0x800000000000, the top of the user address space"},
		{"0x10000000000000000", 0, "--base 0x10000000000000000: bad address: past 64 bits"},
	} {
		var v uintptr
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fs.Var(&addrFlag{v: &v, align: granularity}, "base", "")
		err := fs.Parse([]string{"--base", tc.in})
		if tc.msg == "" {
			if err != nil || v != tc.want {
				t.Errorf("--base %s = %#x, %v; want %#x", tc.in, v, err, tc.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("--base %s accepted (%#x)", tc.in, v)
		} else if got := flagError(err); !strings.HasPrefix(got, tc.msg) {
			t.Errorf("--base %s: %q, want it to start with %q", tc.in, got, tc.msg)
		}
	}
}

// TestOtherFlags: integers in a range, lists and choices of names, and the
// flag package's own errors, each in the CLI's one-line form.
func TestOtherFlags(t *testing.T) {
	var n int
	var list []string
	var choice string
	var b bool
	var f float64
	newFS := func() *flag.FlagSet {
		fs := newFlagSet("t")
		fs.Var(&intFlag{v: &n, min: 1, max: maxInt}, "runs", "")
		fs.Var(&intFlag{v: &n, min: 0, max: 100}, "race", "")
		fs.Var(&listFlag{v: &list, valid: []string{"a", "b", "c"}}, "only", "")
		fs.Var(&choiceFlag{v: &choice, valid: []string{"x", "y"}}, "backend", "")
		fs.BoolVar(&b, "json", false, "")
		fs.Float64Var(&f, "seconds", 0, "")
		return fs
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--runs", "0"}, "--runs 0: must be at least 1"},
		{[]string{"--runs", "x"}, "--runs x: not an integer"},
		{[]string{"--race", "101"}, "--race 101: must be in [0, 100]"},
		{[]string{"--only", "a,nope"}, `--only a,nope: unknown name "nope": want a comma-separated list of a, b, c`},
		{[]string{"--backend", "z"}, "--backend z: want one of x, y"},
		{[]string{"--json=2"}, "--json=2: want true or false"},
		{[]string{"--seconds", "fast"}, "--seconds fast: not a number"},
		{[]string{"--bogus"}, "unknown flag --bogus"},
		{[]string{"--runs"}, "--runs needs a value"},
	} {
		err := newFS().Parse(tc.args)
		if err == nil || flagError(err) != tc.msg {
			t.Errorf("%q: %v, want %q", tc.args, err, tc.msg)
		}
	}
	if err := newFS().Parse([]string{"--only", "c,a,c", "--race", "0", "--backend", "y"}); err != nil || strings.Join(list, ",") != "c,a" || n != 0 || choice != "y" {
		t.Errorf("good values: %v, list %q, n %d, choice %q", err, list, n, choice)
	}
}

// TestCheckOut: an output directory or file that cannot be made is
// refused; one that can is left as it was (a file) or made (a directory,
// without the probe).
func TestCheckOut(t *testing.T) {
	dir := tempDir(t)
	file := dir + "/plain"
	if err := checkOutFile(file); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(file); err == nil {
		t.Errorf("checkOutFile left %s behind", file)
	}
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := checkOutFile(file); err != nil {
		t.Errorf("an existing writable file: %v", err)
	}
	if got, _ := os.ReadFile(file); string(got) != "x" {
		t.Errorf("checkOutFile changed the existing file to %q", got)
	}
	for _, bad := range []string{file + "/sub", dir} {
		if err := checkOutFile(bad); err == nil {
			t.Errorf("checkOutFile(%s) accepted", bad)
		}
	}
	if err := checkOutDir(file + "/sub"); err == nil {
		t.Errorf("checkOutDir under a file accepted")
	}
	sub := dir + "/a/b"
	if err := checkOutDir(sub); err != nil {
		t.Fatal(err)
	}
	if ents, err := os.ReadDir(sub); err != nil || len(ents) != 0 {
		t.Errorf("checkOutDir left %d entries in %s (%v)", len(ents), sub, err)
	}
	if runtime.GOOS == "linux" {
		if err := checkOutDir("/proc/reachvm-nope"); err == nil {
			t.Errorf("checkOutDir(/proc/...) accepted")
		}
	}
}

// TestListFlagArgs checks a list whose names may carry an argument
// (--client memtrace:drop): the name is checked, the entry kept whole.
func TestListFlagArgs(t *testing.T) {
	var list []string
	f := &listFlag{v: &list, valid: []string{"inscount", "memtrace"}, withArg: true}
	if err := f.Set("memtrace:drop,inscount,memtrace"); err != nil || !slices.Equal(list, []string{"memtrace:drop", "inscount", "memtrace"}) {
		t.Errorf("Set = %v, list %q", err, list)
	}
	if err := f.Set("nope:drop"); err == nil || !strings.Contains(err.Error(), `unknown name "nope:drop"`) {
		t.Errorf("Set(nope:drop) = %v, want an unknown name", err)
	}
	plain := &listFlag{v: &list, valid: []string{"memtrace"}}
	if err := plain.Set("memtrace:drop"); err == nil {
		t.Errorf("a list without arguments took memtrace:drop: %q", list)
	}
}

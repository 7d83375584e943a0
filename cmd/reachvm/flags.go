package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/reachvm/reachvm/mem"
)

// The flag values every subcommand shares: sizes and addresses, each with
// its rule, so that a bad value is refused while the flags are parsed,
// before any work, with one line naming the flag and the rule.

// granularity is the unit of every size and address the CLI passes to vmm:
// the OS's allocation granularity.
// It is a variable initializer, not an init function, so that the rules
// built from it (vmcodeRule) are initialized after it.
var granularity = osGranularity()

func osGranularity() uintptr {
	if runtime.GOOS == "windows" {
		return mem.GranularityWindows
	}
	return mem.GranularityLinux
}

// vmcodeMax is the largest vmcode: every byte of it within rel32 reach of
// every other, the guarantee vmcode exists for.
const vmcodeMax = mem.Rel32Max + 1

// userTop bounds the addresses the CLI accepts: the top of x86-64's user
// address space with 4-level paging. The kernel hands out nothing above it
// unless asked, and asking for vmcode there is almost always a typo.
const userTop = 1 << 47

// sizeRule is what a size flag accepts: a non-zero multiple of Multiple,
// at most Max (0: no bound).
type sizeRule struct {
	Multiple uintptr
	Max      uintptr
	// MaxWhy says why Max is the bound, for the message.
	MaxWhy string
}

// vmcodeRule is vmcode's size rule.
var vmcodeRule = sizeRule{Multiple: granularity, Max: vmcodeMax, MaxWhy: "the most vmcode can be while every byte of it stays within rel32 reach of every other"}

// text is the rule as the usage texts and the messages print it.
func (r sizeRule) text() string {
	s := "a non-zero multiple of " + sizeText(r.Multiple)
	if r.Max != 0 {
		s += ", at most " + sizeText(r.Max)
	}
	return s
}

// parseSize reads a byte count: decimal or 0x hexadecimal, with an
// optional K, M or G suffix (powers of 1024): 4096, 0x1000, 64K, 512M, 2G.
// ok is false if it does not fit in 64 bits (nor, on a 32-bit host, in a
// uintptr).
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
	// Base 0 would also take octal (0755) and binary (0b1); a size is
	// decimal or hex.
	base := 10
	if h, ok := strings.CutPrefix(strings.ToLower(t), "0x"); ok {
		base, t = 16, h
	}
	v, err := strconv.ParseUint(t, base, 64)
	if errors.Is(err, strconv.ErrRange) {
		return 0, errors.New("too large: past 64 bits")
	}
	if err != nil || t == "" || t[0] == '+' {
		return 0, errors.New("not a size: want a number of bytes, decimal or 0x hex, with an optional K, M or G suffix (4096, 0x1000, 512M, 2G)")
	}
	hi, lo := bits.Mul64(v, mult)
	if hi != 0 || lo > uint64(^uintptr(0)) {
		return 0, fmt.Errorf("too large: past %d bits", bits.UintSize)
	}
	return uintptr(lo), nil
}

// check applies the rule to a parsed size. The message names the rule,
// not the value: the caller prints that.
func (r sizeRule) check(v uintptr) error {
	switch {
	case v == 0:
		return fmt.Errorf("must not be 0 (want %s)", r.text())
	case r.Max != 0 && v > r.Max:
		msg := "past " + sizeText(r.Max)
		if r.MaxWhy != "" {
			msg += ", " + r.MaxWhy
		}
		return errors.New(msg)
	case r.Multiple > 1 && v%r.Multiple != 0:
		return fmt.Errorf("not a multiple of %s, the allocation granularity", sizeText(r.Multiple))
	}
	return nil
}

// sizeText prints a size as the flags read it: 4K, 64K, 2G, or bytes.
func sizeText(v uintptr) string {
	for _, u := range []struct {
		shift uint
		s     string
	}{{30, "G"}, {20, "M"}, {10, "K"}} {
		if v != 0 && v%(1<<u.shift) == 0 {
			return strconv.FormatUint(uint64(v>>u.shift), 10) + u.s
		}
	}
	return strconv.FormatUint(uint64(v), 10)
}

// sizeFlag is a flag.Value for a byte count under a rule. set records that
// the flag was given.
type sizeFlag struct {
	v    *uintptr
	rule sizeRule
	set  bool
}

func (f *sizeFlag) String() string {
	if f == nil || f.v == nil || *f.v == 0 {
		return ""
	}
	return sizeText(*f.v)
}

func (f *sizeFlag) Set(s string) error {
	v, err := parseSize(s)
	if err == nil {
		err = f.rule.check(v)
	}
	if err != nil {
		return err
	}
	*f.v, f.set = v, true
	return nil
}

// parseAddress reads an address: hexadecimal, with or without 0x, as
// /proc/self/maps and every report of reachvm print them.
func parseAddress(s string) (uintptr, error) {
	t := strings.TrimSpace(s)
	if h, ok := strings.CutPrefix(strings.ToLower(t), "0x"); ok {
		t = h
	}
	v, err := strconv.ParseUint(t, 16, 64)
	if err != nil || t == "" || t[0] == '+' {
		if errors.Is(err, strconv.ErrRange) {
			return 0, errors.New("bad address: past 64 bits")
		}
		return 0, errors.New("bad address: want hexadecimal, with or without 0x (0x100000000000)")
	}
	if v >= userTop {
		return 0, fmt.Errorf("bad address: at or past %#x, the top of the user address space", uint64(userTop))
	}
	return uintptr(v), nil
}

// addrFlag is a flag.Value for an address aligned to align. set records
// that the flag was given.
type addrFlag struct {
	v     *uintptr
	align uintptr
	set   bool
}

func (f *addrFlag) String() string {
	if f == nil || f.v == nil || *f.v == 0 {
		return ""
	}
	return fmt.Sprintf("%#x", *f.v)
}

func (f *addrFlag) Set(s string) error {
	v, err := parseAddress(s)
	if err != nil {
		return err
	}
	if v == 0 {
		return errors.New("bad address: must not be 0")
	}
	if f.align > 1 && v%f.align != 0 {
		return fmt.Errorf("bad address: not a multiple of %s, the allocation granularity", sizeText(f.align))
	}
	*f.v, f.set = v, true
	return nil
}

// maxInt is the largest int: an intFlag without an upper bound.
const maxInt = int(^uint(0) >> 1)

// intFlag is a flag.Value for an integer in [min, max].
type intFlag struct {
	v        *int
	min, max int
}

func (f *intFlag) String() string {
	if f == nil || f.v == nil {
		return ""
	}
	return strconv.Itoa(*f.v)
}

func (f *intFlag) Set(s string) error {
	v, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("not an integer")
	}
	if v < f.min || v > f.max {
		if f.max == maxInt {
			return fmt.Errorf("must be at least %d", f.min)
		}
		return fmt.Errorf("must be in [%d, %d]", f.min, f.max)
	}
	*f.v = v
	return nil
}

// listFlag is a flag.Value for a comma-separated list of names from
// valid.
type listFlag struct {
	v     *[]string
	valid []string
	// withArg lets each name carry one argument after a colon,
	// NAME:ARG, kept whole in the list; the name alone is checked.
	withArg bool
}

func (f *listFlag) String() string {
	if f == nil || f.v == nil {
		return ""
	}
	return strings.Join(*f.v, ",")
}

func (f *listFlag) Set(s string) error {
	var out []string
	for _, n := range strings.Split(s, ",") {
		n = strings.TrimSpace(n)
		name := n
		if f.withArg {
			name, _, _ = strings.Cut(n, ":")
		}
		if !contains(f.valid, name) {
			return fmt.Errorf("unknown name %q: want a comma-separated list of %s", n, strings.Join(f.valid, ", "))
		}
		if !contains(out, n) {
			out = append(out, n)
		}
	}
	*f.v = out
	return nil
}

// choiceFlag is a flag.Value for one name from valid.
type choiceFlag struct {
	v     *string
	valid []string
}

func (f *choiceFlag) String() string {
	if f == nil || f.v == nil {
		return ""
	}
	return *f.v
}

func (f *choiceFlag) Set(s string) error {
	if !contains(f.valid, s) {
		return fmt.Errorf("want one of %s", strings.Join(f.valid, ", "))
	}
	*f.v = s
	return nil
}

// checkOutDir makes dir (and its parents) and writes and removes a probe
// file in it, so that an output directory that cannot be written is
// refused before a run, not after it.
func checkOutDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cannot create it: %w", err)
	}
	f, err := os.CreateTemp(dir, ".reachvm-probe-*")
	if err != nil {
		return fmt.Errorf("cannot write into it: %w", err)
	}
	name := f.Name()
	f.Close()
	// Writing worked, which is what was asked; the probe's removal is
	// best-effort (under Wine some unlink calls fail).
	_ = os.Remove(name)
	return nil
}

// checkOutFile checks that path can be written: an existing file is
// opened for writing (not truncated), a missing one is created and
// removed again, so that nothing is left if the run then fails.
func checkOutFile(path string) error {
	if fi, err := os.Stat(path); err == nil {
		if fi.IsDir() {
			return errors.New("is a directory")
		}
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("cannot write it: %w", err)
		}
		return f.Close()
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("cannot create its directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("cannot create it: %w", err)
	}
	f.Close()
	// Best-effort, as in checkOutDir: the run writes the file anyway.
	_ = os.Remove(path)
	return nil
}

// usageError is a bad invocation: exit status 2, one line on stderr and a
// pointer to the subcommand's help.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// badUsage returns a usageError.
func badUsage(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// flagErrorRes are the flag package's error texts, to be rewritten to the
// CLI's form: the flag as --name, then the value's own message (which
// names the rule). Compiled at the first bad flag, not at every start.
var flagErrorRes = sync.OnceValue(func() (r struct{ invalid, undef, needsArg, flagName *regexp.Regexp }) {
	r.invalid = regexp.MustCompile(`^invalid (value|boolean value) "(.*)" for (?:flag )?-([^:]+): (.*)$`)
	r.undef = regexp.MustCompile(`^flag provided but not defined: -+(.*)$`)
	r.needsArg = regexp.MustCompile(`^flag needs an argument: -+(.*)$`)
	r.flagName = regexp.MustCompile(`(^|[ (])-([a-z][a-z-]*)`)
	return r
})

// flagError rewrites a flag package error into one line.
func flagError(err error) string {
	s := err.Error()
	re := flagErrorRes()
	reInvalid, reUndef, reNeedsArg, reFlagName := re.invalid, re.undef, re.needsArg, re.flagName
	if m := reInvalid.FindStringSubmatch(s); m != nil {
		value, name, msg := m[2], m[3], m[4]
		if value == "" || strings.ContainsAny(value, " \t") {
			value = strconv.Quote(value)
		}
		// The messages of the flag package's own Bool, Int, Uint64 and
		// Float64 values.
		switch {
		case msg == "parse error" && m[1] == "boolean value":
			msg = "want true or false"
		case msg == "parse error":
			msg = "not a number"
		case msg == "value out of range":
			msg = "out of range"
		}
		if m[1] == "boolean value" {
			return "--" + name + "=" + value + ": " + msg
		}
		return "--" + name + " " + value + ": " + msg
	}
	if m := reUndef.FindStringSubmatch(s); m != nil {
		return "unknown flag --" + m[1]
	}
	if m := reNeedsArg.FindStringSubmatch(s); m != nil {
		return "--" + m[1] + " needs a value"
	}
	return reFlagName.ReplaceAllString(s, "$1--$2")
}

// newFlagSet returns a flag set for the subcommand that prints nothing
// itself: parse reports.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parse parses args into fs for the subcommand named cmd. -h and --help
// print the subcommand's usage to stdout (status 0); a bad flag prints
// one line and a pointer to the help on stderr (status 2). ok is true if
// the command is to go on.
func parse(cmd string, fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (status int, ok bool) {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(stdout, cmd, fs)
		return 0, false
	}
	if err != nil {
		return fail(stderr, cmd, badUsage("%s", flagError(err))), false
	}
	return 0, true
}

// fail reports err for the subcommand cmd and returns the exit status: 2
// and a pointer to the help for a usageError, 1 otherwise.
func fail(stderr io.Writer, cmd string, err error) int {
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "reachvm %s: %s\nrun 'reachvm help %s' for usage\n", cmd, ue.msg, cmd)
		return 2
	}
	fmt.Fprintf(stderr, "reachvm %s: %v\n", cmd, err)
	return 1
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

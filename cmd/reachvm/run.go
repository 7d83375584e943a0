package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
)

const runSynopsis = "run [-c|--client NAME [-o|--client-out FILE] [CLIENT-ARGS...] --] [--stats] [--json] [--perf-map] [--jitdump] [--gdb] [--strict-flags] [--high] [--no-vdso] [--no-jump-tables] [--no-slot-branches] [--max-blocks N] [--exec-native] [-q|--quiet] PROG [ARGS...]"

const runAbout = `Loads the executable PROG itself (static: ET_EXEC or PIE; or
dynamic, with its interpreter, the system's ld.so, which loads its
libraries under reachvm too) and runs it
under reachvm's binary translator from vmcode, with ARGS and this
process's environment, as the kernel's execve would start it (its
auxiliary vector, the vDSO unless --no-vdso). PROG without a slash is
looked for in PATH, as a shell does; a script (#!) runs its interpreter,
as execve runs it. A mmap over vmcode is refused, and
exit ends the run. The program's standard input, output and error are
reachvm's; reachvm exits with the program's status (125: vmcode or the
translator could not be set up, 126: PROG could not be loaded, 127: the run
failed). The program's signals are emulated (handlers, masks, the
alternate stack); when a signal's default action ends it, reachvm says on
standard error which signal, where (module+offset) and, for a fault, the
faulting address (unless --quiet), and dies of the same signal, as the
program would have (the shell sees 128+N, a core is dumped where the
program's would be). With --stats, the translator's counters follow the run on
standard error (standard output is the program's), as a table of name,
value and unit, or with --json as one JSON object on one line: program,
exit_status, fragments, blocks, instructions, exits, ibl_misses, links,
polymorphic_sites, jump_tables, slot_branches, flushes, mangled_operands,
syscalls, cache_bytes,
signals, signal_steps, invalidated_fragments, code_writes, write_protects,
forks, threads (the counts include what every thread's translation did).
PROG's threads run under reachvm, each on an OS thread of its own. The
processes PROG creates (fork, vfork, clone, posix_spawn) run
natively from the instruction after the call, untranslated and unseen by
--stats, --perf-map, --jitdump and --gdb. A program PROG executes (execve)
runs under reachvm with the same flags, its arguments and environment as
PROG passed them (a script's interpreter too); its own --stats then
replace PROG's, which are not printed; one reachvm cannot load runs
natively, after a line saying why. With --exec-native it runs natively
instead. Either way an execve that fails returns its error to PROG, which
goes on.
Translated code is named after PROG's functions ("reachvm:PROG!f3+0x0")
for perf with --perf-map (/tmp/perf-<pid>.map) and --jitdump
(jit-<pid>.dump in $JITDUMPDIR or /tmp: perf record -k 1, then perf
inject --jit), and for gdb with --gdb (its JIT interface: gdb names and
unwinds frames in the code cache and in PROG). With -c NAME a sample
client instruments PROG (inscount: instructions executed; bbcount:
executions per basic block; opcodes: instructions executed by mnemonic;
calltrace: calls and returns of named functions; memtrace: every load
and store, to a compact file, with file=PATH or drop as its argument;
wrap: malloc and free, and the leaks) and writes its report, one JSON object, to standard error
or with -o to FILE when PROG ends; arguments for the client follow its name, up
to a "--". A program PROG executes runs under the same client, whose
report is then that program's. A NAME with a slash or ending in .so
(-c ./client.so) is a native client, a shared library written against
include/reachvm.h (docs/clients.md), loaded privately next to the code
cache; its exit event writes the report. linux/amd64 only.`

// runOptions are run's flags.
type runOptions struct {
	stats, json, perfMap, jitDump, gdb, strict, high, noVDSO, noJumpTables, noSlotBranches, quiet, execNative bool
	maxBlocks                                                                                                 int
	// client is the sample client to run (-c), clientArgs its
	// arguments, clientOut where its report goes (-o; standard error
	// if empty).
	client, clientOut string
	clientArgs        []string
	// inherit is the state an execve followed under reachvm passes on
	// (the hidden flags): argv[0], the signal mask, the ignored
	// signals, AT_EXECFN.
	inherit execState
}

// execState is what a reachvm that follows a program's execve is given
// by the one that execs it, through run's hidden flags: argv0 the new
// program's argv[0] (argv0Set when given: it may be empty), sigMask and
// sigIgnored its signal mask and ignored signals, execFn its AT_EXECFN
// ("" for PROG).
type execState struct {
	argv0               string
	argv0Set            bool
	sigMask, sigIgnored uint64
	execFn              string
}

// hiddenFlags are flags the usage does not list: how reachvm passes the
// state an execve keeps to the reachvm that runs the new program, which
// no one types.
var hiddenFlags = map[string]bool{"argv0": true, "sigmask": true, "sigign": true, "execfn": true}

// strFlag is a flag.Value for a string that records whether it was given.
type strFlag struct {
	v   *string
	set *bool
}

func (f *strFlag) String() string {
	if f == nil || f.v == nil {
		return ""
	}
	return *f.v
}

func (f *strFlag) Set(s string) error {
	*f.v, *f.set = s, true
	return nil
}

// maskFlag is a flag.Value for a signal set, bit sig-1, in hexadecimal.
type maskFlag struct{ v *uint64 }

func (f *maskFlag) String() string {
	if f == nil || f.v == nil {
		return ""
	}
	return fmt.Sprintf("%#x", *f.v)
}

func (f *maskFlag) Set(s string) error {
	v, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(s), "0x"), 16, 64)
	if err != nil {
		return errors.New("not a signal set: want hexadecimal, bit sig-1")
	}
	*f.v = v
	return nil
}

// followArgs returns the flags that give the reachvm following an execve
// the options o has (not the state the execve passes on).
func (o *runOptions) followArgs() []string {
	var a []string
	for _, f := range []struct {
		on   bool
		name string
	}{{o.stats && !o.json, "--stats"}, {o.json, "--json"}, {o.perfMap, "--perf-map"}, {o.jitDump, "--jitdump"},
		{o.gdb, "--gdb"}, {o.strict, "--strict-flags"}, {o.high, "--high"}, {o.noJumpTables, "--no-jump-tables"}, {o.noSlotBranches, "--no-slot-branches"}, {o.quiet, "--quiet"}} {
		if f.on {
			a = append(a, f.name)
		}
	}
	if o.maxBlocks != 0 {
		a = append(a, "--max-blocks="+strconv.Itoa(o.maxBlocks))
	}
	return a
}

// runStats is what --stats prints: the translator's counters (jit.Stats),
// named for a reader.
type runStats struct {
	Program     string `json:"program"`
	ExitStatus  int    `json:"exit_status"`
	Fragments   int    `json:"fragments"`
	Blocks      int    `json:"blocks"`
	Instrs      int    `json:"instructions"`
	Exits       int    `json:"exits"`
	IBLMisses   int    `json:"ibl_misses"`
	Links       int    `json:"links"`
	Polymorphic int    `json:"polymorphic_sites"`
	JumpTables  int    `json:"jump_tables"`
	SlotBranch  int    `json:"slot_branches"`
	Flushes     int    `json:"flushes"`
	Mangled     int    `json:"mangled_operands"`
	Syscalls    int    `json:"syscalls"`
	CacheBytes  uint64 `json:"cache_bytes"`
	Signals     int    `json:"signals"`
	Steps       int    `json:"signal_steps"`
	Invalidated int    `json:"invalidated_fragments"`
	CodeWrites  int    `json:"code_writes"`
	Protected   int    `json:"write_protects"`
	Forks       int    `json:"forks"`
	Threads     int    `json:"threads"`
	// HeapBytes and PeakRSS are read as the run ends: the Go heap's
	// objects (the translator's records of fragments, exits and
	// inline-cache sites, the bulk of what reachvm adds to a program
	// besides the cache), and the process's peak resident set, reachvm
	// and the program together (getrusage), which counts each page of the
	// cache twice, once per view.
	HeapBytes uint64 `json:"heap_bytes"`
	PeakRSS   uint64 `json:"peak_rss_bytes"`
}

// write prints the counters as a table (name, value, unit, and what it
// counts) or as one JSON object on one line.
func (s *runStats) write(w io.Writer, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(s)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "reachvm run: %s exited %d\n", s.Program, s.ExitStatus)
	fmt.Fprintln(tw, "counter\tvalue\tunit\twhat")
	for _, r := range []struct {
		name  string
		v     uint64
		unit  string
		about string
	}{
		{"fragments", uint64(s.Fragments), "fragments", "translated into the code cache"},
		{"blocks", uint64(s.Blocks), "blocks", "basic blocks in them"},
		{"instructions", uint64(s.Instrs), "instructions", "application instructions translated"},
		{"exits", uint64(s.Exits), "exits", "returns to the dispatcher (a context switch each)"},
		{"ibl_misses", uint64(s.IBLMisses), "exits", "of them from an indirect-branch lookup miss"},
		{"links", uint64(s.Links), "exits", "patched to jump straight to their target"},
		{"polymorphic_sites", uint64(s.Polymorphic), "sites", "indirect branches past their inline cache"},
		{"jump_tables", uint64(s.JumpTables), "sites", "indirect jumps through a table of translated code"},
		{"slot_branches", uint64(s.SlotBranch), "branches", "through a slot (a PLT's jump), gone on through behind a guard"},
		{"flushes", uint64(s.Flushes), "flushes", "of the whole code cache"},
		{"mangled_operands", uint64(s.Mangled), "operands", "RIP-relative, out of rel32 reach, rewritten"},
		{"syscalls", uint64(s.Syscalls), "syscalls", "performed for the application"},
		{"cache_bytes", s.CacheBytes, "bytes", "of code cache in use"},
		{"signals", uint64(s.Signals), "signals", "taken out of the code cache (faults, asynchronous signals)"},
		{"signal_steps", uint64(s.Steps), "steps", "single steps out of inserted code to deliver a signal"},
		{"invalidated_fragments", uint64(s.Invalidated), "fragments", "deleted because their code changed"},
		{"code_writes", uint64(s.CodeWrites), "writes", "to write-protected code pages, caught"},
		{"write_protects", uint64(s.Protected), "pages", "write-protected while translations of them live"},
		{"forks", uint64(s.Forks), "processes", "created by the program, each run natively"},
		{"threads", uint64(s.Threads), "threads", "started by the program (clone), each translated on its own"},
		{"heap_bytes", s.HeapBytes, "bytes", "of Go heap in use (the translator's records) at the end"},
		{"peak_rss_bytes", s.PeakRSS, "bytes", "resident at most, reachvm and the program together"},
	} {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", r.name, r.v, r.unit, r.about)
	}
	return tw.Flush()
}

// cmdRun is `reachvm run [flags] PROG [ARGS...]`: it parses and checks
// the flags everywhere (so that --help works on every platform) and runs
// PROG where the translator exists.
func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("run")
	var o runOptions
	fs.BoolVar(&o.stats, "stats", false, "print the translator's counters to standard error after the run, as a table")
	fs.BoolVar(&o.json, "json", false, "print the counters as one JSON object instead of a table (implies --stats)")
	fs.BoolVar(&o.perfMap, "perf-map", false, "write /tmp/perf-<pid>.map entries for the translated code, for perf")
	fs.BoolVar(&o.jitDump, "jitdump", false, "write perf's jitdump (jit-<pid>.dump in $JITDUMPDIR or /tmp) for perf inject --jit")
	fs.BoolVar(&o.gdb, "gdb", false, "register the program and the translated code with gdb's JIT interface")
	fs.BoolVar(&o.strict, "strict-flags", false, "keep the arithmetic flags exactly across calls and returns (for code outside the psABI)")
	fs.BoolVar(&o.high, "high", false, "let the OS place vmcode instead of asking for it below 2 GiB")
	fs.BoolVar(&o.noVDSO, "no-vdso", false, "start PROG without the vDSO: its libc makes clock_gettime and gettimeofday as system calls")
	fs.BoolVar(&o.noJumpTables, "no-jump-tables", false, "translate jumps through read-only jump tables as other indirect jumps, not into tables of translated code")
	fs.BoolVar(&o.noSlotBranches, "no-slot-branches", false, "translate jumps and calls through a slot (a PLT's jump) as other indirect branches, not as direct ones behind a guard")
	fs.Var(&intFlag{v: &o.maxBlocks, min: 0, max: maxInt}, "max-blocks", "basic blocks per fragment, `N` >= 0 (1: no superblocks; 0: the translator's default)")
	fs.BoolVar(&o.execNative, "exec-native", false, "run the programs PROG executes (execve) natively instead of under reachvm")
	fs.Var(&strFlag{v: &o.inherit.argv0, set: &o.inherit.argv0Set}, "argv0", "the program's argv[0] (an execve followed)")
	fs.Var(&maskFlag{v: &o.inherit.sigMask}, "sigmask", "the program's blocked signals (an execve followed)")
	fs.Var(&maskFlag{v: &o.inherit.sigIgnored}, "sigign", "the program's ignored signals (an execve followed)")
	fs.StringVar(&o.inherit.execFn, "execfn", "", "the program's AT_EXECFN (an execve followed)")
	const quiet = "say nothing when a signal kills the program (reachvm still dies of it)"
	fs.BoolVar(&o.quiet, "quiet", false, quiet)
	fs.BoolVar(&o.quiet, "q", false, quiet)
	const client = "run the sample client `NAME` (" + clientNames + ") or the native client NAME (./FILE.so); its arguments follow, up to a --"
	fs.StringVar(&o.client, "client", "", client)
	fs.StringVar(&o.client, "c", "", client)
	const clientOut = "write the client's report to `FILE` instead of standard error"
	fs.StringVar(&o.clientOut, "client-out", "", clientOut)
	fs.StringVar(&o.clientOut, "o", "", clientOut)
	if status, ok := parse("run", fs, args, stdout, stderr); !ok {
		return status
	}
	rest := fs.Args()
	if o.client != "" {
		o.clientArgs, rest = splitClientArgs(args, rest)
		// Absolute, so that a program that changes directory and
		// executes another (followed with the same client) finds
		// them.
		if strings.Contains(o.client, "/") || strings.HasSuffix(o.client, ".so") {
			if abs, err := filepath.Abs(o.client); err == nil {
				o.client = abs
			}
		}
		if o.clientOut != "" {
			if abs, err := filepath.Abs(o.clientOut); err == nil {
				o.clientOut = abs
			}
		}
	} else if o.clientOut != "" {
		return fail(stderr, "run", badUsage("-o without -c"))
	}
	if len(rest) == 0 {
		return fail(stderr, "run", badUsage("missing PROG"))
	}
	o.stats = o.stats || o.json
	return execRun(&o, rest, stderr)
}

// clientNames lists the sample clients for run's usage (package
// clients has them on linux/amd64, where TestClientNames checks this).
const clientNames = "bbcount, calltrace, inscount, memtrace, opcodes, wrap"

// splitClientArgs splits what follows run's flags, rest (args' tail),
// into the client's arguments and PROG with its own: a client's
// arguments end at "--" (`-c NAME a b -- PROG`). When the flags ended at
// a "--" of their own (`-c NAME -- PROG`), or no "--" follows, the
// client has none.
func splitClientArgs(args, rest []string) (clientArgs, prog []string) {
	if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
		return nil, rest
	}
	for i, a := range rest {
		if a == "--" {
			return rest[:i], rest[i+1:]
		}
	}
	return nil, rest
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/reachvm/reachvm/bench"
	"github.com/reachvm/reachvm/jit/kernels"
)

const benchSynopsis = "bench kernels|programs [flags]"

const benchAbout = `Measures reachvm's translator against native runs and its peers,
valgrind --tool=none and qemu-x86_64, in one run: 'bench kernels' on the
jit's C kernels, 'bench programs' on real programs of the distribution
(xz, sha256sum, sqlite3, python3...). Run 'reachvm help bench kernels' or
'reachvm help bench programs' for each one's synopsis and flags.`

// benchSubs returns bench's benchmarks, each with its own usage (a
// function, as commands' init fills them in: their help refers back).
func benchSubs() []command {
	return []command{
		{name: "kernels", run: cmdBenchKernels, synopsis: benchKernelsSynopsis, about: benchKernelsAbout},
		{name: "programs", run: cmdBenchPrograms, synopsis: benchProgramsSynopsis, about: benchProgramsAbout},
	}
}

const benchKernelsSynopsis = "bench kernels [--json] [--runs N] [--seconds S] [--only K1,K2] [--tools T1,T2] [--client C1,C2] [--plot FILE] [--pie] [--reachvm PATH] [--dynamorio DIR] [--install]"

var benchKernelsAbout = `Builds the jit's C kernels (with gcc) as one static executable and times
each kernel as a whole process natively, under 'reachvm run', under
valgrind --tool=none and under qemu-x86_64, all in the same run: each
kernel's repeat count is scaled until its native run takes about --seconds,
then every tool runs it --runs times, in rounds of one run per tool (its
output must equal native's), and the median counts. Prints the seconds and the ratio to native per kernel
and tool, and each tool's geometric mean and worst kernel (micro-benchmarks,
marked *, outside them). --client adds a tool for each sample client named,
reachvm+NAME: 'reachvm run -c NAME', its report discarded; its ratio to
native beside reachvm's is the client's cost (memtrace writes its trace
to a file in a temporary directory, emptied after every run).
--dynamorio DIR (or $DYNAMORIO_HOME) adds DynamoRIO, a release package or
build directory: the tool dynamorio, drrun alone, and for each --client
with a DynamoRIO sample of its kind (inscount, bbcount, opcodes;
memtrace_x86_binary for memtrace, its trace written beside the library in
a temporary directory) the tool dynamorio+NAME, whose output must hold the
program's lines among the sample's own. With --json one object: program, runs, tools,
kernels (each: kernel, micro, n, repeat, seconds and ratio by tool),
geomean and worst by tool. Progress lines go to standard error. A tool
that is not installed is skipped, with the apt-get command that installs
it; --install runs that command (root only). Kernels: ` + strings.Join(bench.KernelNames(), ", ") + `.
linux/amd64 only.`

// cmdBench is `reachvm bench BENCHMARK [flags]`: it hands the arguments
// to the benchmark named.
func cmdBench(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		printUsage(stdout, "bench", newFlagSet("bench"))
		return 0
	}
	c, _ := lookup("bench")
	var names []string
	for _, b := range c.subs {
		names = append(names, b.name)
		if len(args) > 0 && args[0] == b.name {
			return b.run(args[1:], stdout, stderr)
		}
	}
	what := "missing"
	if len(args) > 0 {
		what = fmt.Sprintf("unknown %q", args[0])
	}
	return fail(stderr, "bench", badUsage("%s benchmark: want %s", what, strings.Join(names, " or ")))
}

// cmdBenchKernels is `reachvm bench kernels [flags]`: it checks every
// flag and the tools, then hands the run to package bench.
func cmdBenchKernels(args []string, stdout, stderr io.Writer) int {
	const name = "bench kernels"
	fs := newFlagSet(name)
	asJSON := fs.Bool("json", false, "print one JSON object instead of a table")
	runs := 3
	fs.Var(&intFlag{v: &runs, min: 1, max: maxInt}, "runs", "timed runs per kernel and tool, `N` >= 1; the median is reported")
	seconds := fs.Float64("seconds", 0.5, "native run time `S` (seconds, > 0) each kernel's repeat count is scaled to")
	plot := fs.String("plot", "", "also write an SVG bar chart of the ratios to `FILE` (checked writable before the run)")
	install := fs.Bool("install", false, "install the missing tools (valgrind, qemu-user) with apt-get first; needs root")
	var only []string
	fs.Var(&listFlag{v: &only, valid: bench.KernelNames()}, "only", "comma-separated kernels `K1,K2` to run, among "+strings.Join(bench.KernelNames(), ", ")+" (default: every one this processor runs)")
	pie := fs.Bool("pie", false, "build the kernels as a static PIE instead of an ET_EXEC")
	self := fs.String("reachvm", "", "the reachvm binary whose 'run' is timed, at `PATH` (default: this one)")
	var tools []string
	fs.Var(&listFlag{v: &tools, valid: bench.KernelToolNames}, "tools", "comma-separated tools `T1,T2` among "+strings.Join(bench.KernelToolNames, ", ")+"; native, the baseline, always runs (default: all installed)")
	clients := clientFlag(fs)
	drDir := dynamorioFlag(fs)
	if status, ok := parse(name, fs, args, stdout, stderr); !ok {
		return status
	}
	if fs.NArg() != 0 {
		return fail(stderr, name, badUsage("unexpected arguments %q", fs.Args()))
	}
	if !(*seconds > 0) || math.IsInf(*seconds, 0) {
		return fail(stderr, name, badUsage("--seconds %v: must be a number of seconds > 0", *seconds))
	}
	ks, err := bench.SelectKernels(only)
	if err != nil {
		return fail(stderr, name, badUsage("--only: %v", strings.TrimPrefix(err.Error(), "bench: ")))
	}
	if *self, err = benchSelf(*self); err != nil {
		return fail(stderr, name, err)
	}
	if *plot != "" {
		if err := checkOutFile(*plot); err != nil {
			return fail(stderr, name, badUsage("--plot %s: %v", *plot, err))
		}
	}
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		return fail(stderr, name, errors.New("linux/amd64 only: the kernels are Linux programs and 'reachvm run' is the linux/amd64 translator"))
	}
	run, status, ok := benchRunners(name, tools, *self, *install, nil, stderr)
	if !ok {
		return status
	}
	// Where the tracing clients' files go, emptied after every run.
	scratch, err := os.MkdirTemp("", "reachvm-bench-kernels-")
	if err != nil {
		return fail(stderr, name, err)
	}
	defer os.RemoveAll(scratch)
	if run, err = bench.WithClients(run, *self, *clients, scratch); err != nil {
		return fail(stderr, name, err)
	}
	if run, status, ok = benchDynamoRIO(name, run, tools, *drDir, *clients, scratch, stderr); !ok {
		return status
	}
	kind := kernels.Exec
	if *pie {
		kind = kernels.PIE
	}
	prog, err := kernels.Program("kernels", kind)
	if err != nil {
		return fail(stderr, name, fmt.Errorf("building the kernels: %w", err))
	}
	res, err := bench.RunKernels(bench.KernelConfig{Program: prog, Kernels: ks, Tools: run, Runs: runs, Seconds: *seconds, Log: stderr})
	if err != nil {
		return fail(stderr, name, errors.New(strings.TrimPrefix(err.Error(), "bench: ")))
	}
	return writeBenchReport(name, res, *asJSON, *plot, stdout, stderr)
}

// clientFlag defines a benchmark's --client flag on fs: the sample
// clients whose runs are timed as well, each a tool (a runner) of its
// own, reachvm+NAME.
func clientFlag(fs *flag.FlagSet) *[]string {
	var clients []string
	fs.Var(&listFlag{v: &clients, valid: strings.Split(clientNames, ", "), withArg: true}, "client",
		"comma-separated sample clients `C1,C2` among "+clientNames+" to time as well: each adds the tool reachvm+NAME, 'reachvm run -c NAME'; NAME:ARG gives the client the argument ARG (memtrace:drop)")
	return &clients
}

// benchSelf returns the reachvm binary a benchmark times: self, the
// --reachvm flag, looked up as exec would and made absolute (the runs may
// start in another directory), or this executable when self is empty.
func benchSelf(self string) (string, error) {
	if self == "" {
		return os.Executable()
	}
	p, err := exec.LookPath(self)
	if err != nil {
		return "", badUsage("--reachvm %s: not an executable file", self)
	}
	return filepath.Abs(p)
}

// benchRunners returns the runners named by --tools (native first) for a
// benchmark timing self, dealing first, as installTools does, with those
// not installed and with the packages extra that the benchmark needs as
// well (one apt-get for both). ok is false when the benchmark must stop,
// with status its exit status: --install was refused or failed, or left a
// runner missing. A package of extra still missing is the benchmark's to
// report.
func benchRunners(name string, tools []string, self string, install bool, extra []bench.ExternalTool, stderr io.Writer) (run []bench.KernelTool, status int, ok bool) {
	run, missingRunners := bench.KernelTools(tools, self)
	if missing := append(missingRunners, extra...); len(missing) > 0 {
		if status, ok := installTools(name, install, missing, stderr); !ok {
			return nil, status, false
		}
		if install {
			if run, missingRunners = bench.KernelTools(tools, self); len(missingRunners) > 0 {
				return nil, fail(stderr, name, fmt.Errorf("%s still missing after apt-get", missingRunners[0].Bin)), false
			}
		}
	}
	return run, 0, true
}

// benchReport is a benchmark's result as package bench gives it.
type benchReport interface {
	WriteTable(w io.Writer) error
	Plot() *bench.Plot
}

// writeBenchReport prints res to stdout, as one JSON object if asJSON and
// as a table otherwise, then writes its SVG chart to plot unless plot is
// empty. It returns the benchmark's exit status.
func writeBenchReport(name string, res benchReport, asJSON bool, plot string, stdout, stderr io.Writer) int {
	var err error
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(res)
	} else {
		err = res.WriteTable(stdout)
	}
	if err != nil {
		return fail(stderr, name, err)
	}
	if plot != "" {
		if err := os.WriteFile(plot, res.Plot().SVG(), 0o644); err != nil {
			return fail(stderr, name, err)
		}
	}
	return 0
}

// installTools deals with the tools (or programs) a benchmark lacks: with
// install, it installs their packages with apt-get (as root only: else it
// fails with the command to run); without, it says on stderr what is
// skipped and the command that installs it. ok is false when the
// benchmark must stop, with status its exit status.
func installTools(name string, install bool, missing []bench.ExternalTool, stderr io.Writer) (status int, ok bool) {
	cmds := bench.AptGetCommands(missing)
	line := strings.Join(cmds[len(cmds)-1], " ")
	switch {
	case install && os.Geteuid() != 0:
		return fail(stderr, name, badUsage("--install needs root: run as root: %s", line)), false
	case install:
		fmt.Fprintf(stderr, "reachvm %s: %s\n", name, line)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		if err := bench.AptGetInstall(ctx, missing, stderr); err != nil {
			return fail(stderr, name, err), false
		}
		return 0, true
	}
	var bins []string
	for _, t := range missing {
		bins = append(bins, t.Bin)
	}
	fmt.Fprintf(stderr, "reachvm %s: %s not found, skipped (install: %s; or rerun with --install as root)\n", name, strings.Join(bins, " and "), line)
	return 0, true
}

// dynamorioFlag defines a benchmark's --dynamorio flag on fs.
func dynamorioFlag(fs *flag.FlagSet) *string {
	return fs.String("dynamorio", "", "time DynamoRIO as well (tool dynamorio, and dynamorio+NAME for each --client with a DynamoRIO sample of its kind): its release package or build directory at `DIR` (default $"+bench.DynamoRIOEnv+"; no package ships it)")
}

// benchDynamoRIO adds DynamoRIO's runners to run when the benchmark
// has an installation (dir, or $DYNAMORIO_HOME) and tools (--tools) does
// not leave it out: drrun alone and, with a scratch directory for their
// files, drrun with the sample of each of clients that has one. ok is
// false when the benchmark must stop, with status its exit status.
func benchDynamoRIO(name string, run []bench.KernelTool, tools []string, dir string, clients []string, scratch string, stderr io.Writer) (_ []bench.KernelTool, status int, ok bool) {
	if dir == "" {
		dir = os.Getenv(bench.DynamoRIOEnv)
	}
	asked := slices.Contains(tools, "dynamorio")
	switch {
	case dir == "" && asked:
		return nil, fail(stderr, name, badUsage("--tools dynamorio: no DynamoRIO given: name its release package or build directory with --dynamorio DIR or $%s", bench.DynamoRIOEnv)), false
	case dir == "" || (tools != nil && !asked):
		return run, 0, true
	}
	dr, err := bench.FindDynamoRIO(dir)
	if err != nil {
		return nil, fail(stderr, name, badUsage("--dynamorio: %v", strings.TrimPrefix(err.Error(), "bench: "))), false
	}
	if scratch == "" && len(clients) > 0 {
		fmt.Fprintf(stderr, "reachvm %s: DynamoRIO's sample clients are timed by bench kernels only: they print into the program's output, which %s compares by its hash\n", name, name)
		clients = nil
	}
	run, skipped, err := bench.WithDynamoRIO(run, dr, true, clients, scratch)
	if err != nil {
		return nil, fail(stderr, name, err), false
	}
	for _, e := range skipped {
		fmt.Fprintf(stderr, "reachvm %s: no DynamoRIO peer for client %v\n", name, e)
	}
	return run, 0, true
}

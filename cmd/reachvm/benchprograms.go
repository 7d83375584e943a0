package main

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"

	"github.com/reachvm/reachvm/bench"
	"github.com/reachvm/reachvm/jit/kernels"
)

const benchProgramsSynopsis = "bench programs [--json] [--plot FILE] [--runs N] [--startup N] [--full] [--scale F] [--only P1,P2] [--tools T1,T2] [--client C1,C2] [--reachvm PATH] [--dynamorio DIR] [--install]"

var benchProgramsAbout = `Times real programs of the distribution on generated inputs as whole
processes natively, under 'reachvm run', under valgrind --tool=none and
under qemu-x86_64, all in the same run: xz -9 and sha256sum of a text
file, sqlite3 running a script of INSERTs and queries on an in-memory
database, python3 running a pure-Python benchmark, and gzip, bzip2, perl
and jq where installed. Each runs --runs times under each runner, in
rounds of one run per runner, native first, so that a machine whose
speed changes meanwhile slows every runner alike (the output and exit
status must equal native's), and the median wall time counts;
/bin/true's median over --startup runs is the start-up time. --client
adds a runner for each sample client named, reachvm+NAME: 'reachvm run
-c NAME', its report discarded (memtrace's trace to the null device).
--dynamorio DIR (or $DYNAMORIO_HOME) adds DynamoRIO's drrun, a release
package or build directory, as the runner dynamorio (its sample clients
print into the program's output: bench kernels times them). Every run starts through a small helper built with gcc (spawn), which forks it and
reports its peak RSS (wait4's ru_maxrss) and CPU time: a child Go starts
directly would report Go's own peak as well. Prints the seconds and the
ratio to native per program and runner, each runner's geometric mean over
the programs it ran, the start-up times, the peak RSS per program and
runner, then the errors (a runner that cannot run a program, reachvm
included, is reported with its exit status and first line of standard
error, and the run goes on) and the programs not installed; with --json
one object: runs, full, scale, runners, startup, programs (each: program,
command, size, unit, seconds, cpu_seconds, ratio and max_rss_kib by
runner, errors), missing, rss_measured, geomean and geomean_of. The
default sizes take about three minutes on two cores with every peer;
--full runs the full ones (64 MiB files, 100,000 rows), --scale
multiplies either. Progress lines go to standard error. A runner or
program not installed is skipped, with the apt-get command that installs
it; --install runs that command (root only), as scripts/bench/install.sh
does. Programs: ` + strings.Join(bench.ProgramNames(), ", ") + `. linux/amd64 only.`

// cmdBenchPrograms is `reachvm bench programs [flags]`: it checks every
// flag, the runners and the programs, builds the spawn helper, then hands
// the run to package bench.
func cmdBenchPrograms(args []string, stdout, stderr io.Writer) int {
	const name = "bench programs"
	fs := newFlagSet(name)
	asJSON := fs.Bool("json", false, "print one JSON object instead of a table")
	plot := fs.String("plot", "", "also write an SVG bar chart of the ratios to `FILE` (checked writable before the run)")
	runs := 1
	fs.Var(&intFlag{v: &runs, min: 1, max: maxInt}, "runs", "timed runs per program and runner, `N` >= 1; the median is reported")
	startup := 10
	fs.Var(&intFlag{v: &startup, min: 0, max: maxInt}, "startup", "runs of /bin/true per runner, `N` >= 0, whose median is the start-up time (0: none)")
	full := fs.Bool("full", false, "the full sizes (64 MiB files, 100,000 rows; tens of minutes with every peer) instead of the default ones")
	scale := fs.Float64("scale", 1, "multiply every input's size by `F` (> 0, at most 1000)")
	var only []string
	fs.Var(&listFlag{v: &only, valid: bench.ProgramNames()}, "only", "comma-separated programs `P1,P2` to run, among "+strings.Join(bench.ProgramNames(), ", ")+" (default: every one installed)")
	var tools []string
	fs.Var(&listFlag{v: &tools, valid: bench.KernelToolNames}, "tools", "comma-separated runners `T1,T2` among "+strings.Join(bench.KernelToolNames, ", ")+"; native, the baseline, always runs (default: all installed)")
	self := fs.String("reachvm", "", "the reachvm binary whose 'run' is timed, at `PATH` (default: this one)")
	install := fs.Bool("install", false, "install the missing runners (valgrind, qemu-user) and programs (xz-utils, sqlite3, python3...) with apt-get first; needs root")
	clients := clientFlag(fs)
	drDir := dynamorioFlag(fs)
	if status, ok := parse(name, fs, args, stdout, stderr); !ok {
		return status
	}
	if fs.NArg() != 0 {
		return fail(stderr, name, badUsage("unexpected arguments %q", fs.Args()))
	}
	if !(*scale > 0 && *scale <= 1000) {
		return fail(stderr, name, badUsage("--scale %v: must be a factor > 0 and at most 1000", *scale))
	}
	ws, err := bench.SelectPrograms(only)
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
		return fail(stderr, name, errors.New("linux/amd64 only: the programs are Linux programs and 'reachvm run' is the linux/amd64 translator"))
	}
	// The runners, then the programs that are not optional: one apt-get
	// for both. A program still missing is reported by the run.
	run, status, ok := benchRunners(name, tools, *self, *install, bench.MissingPrograms(ws), stderr)
	if !ok {
		return status
	}
	// No scratch directory: memtrace writes to the null device, and
	// DynamoRIO's samples, which print into the output, are left out.
	if run, err = bench.WithClients(run, *self, *clients, ""); err != nil {
		return fail(stderr, name, err)
	}
	if run, status, ok = benchDynamoRIO(name, run, tools, *drDir, *clients, "", stderr); !ok {
		return status
	}
	spawn, err := kernels.Program("spawn", kernels.PIE)
	if err != nil {
		fmt.Fprintf(stderr, "reachvm %s: no spawn helper, peak RSS not measured: %v\n", name, err)
		spawn = ""
	}
	res, err := bench.RunPrograms(bench.ProgramConfig{Workloads: ws, Runners: run, Runs: runs, StartupRuns: startup, Full: *full, Scale: *scale, Spawn: spawn, Log: stderr})
	if err != nil {
		return fail(stderr, name, errors.New(strings.TrimPrefix(err.Error(), "bench: ")))
	}
	return writeBenchReport(name, res, *asJSON, *plot, stdout, stderr)
}

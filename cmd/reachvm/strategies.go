package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"strings"

	"github.com/reachvm/reachvm/bench"
	"github.com/reachvm/reachvm/bench/strategy"
)

const strategiesSynopsis = "strategies [--backend sim|linux|windows|wine] [--trials N] [--seed S] [--race P] [--strategy S1,S2] [--workload W1,W2] [--json] [--out DIR] [--sweep-trials N] [--sweep-workload W] [--sweep-race P1,P2]"

var strategiesAbout = `Runs the reachability-strategy matrix of package bench over the strategies
of package bench/strategy (` + strings.Join(strategy.Names(), ", ") + `):
each strategy sets up a region, places client libraries at init and
after, unloads and reloads them and tears down, --trials times on fresh
seeded layouts of each workload, with another thread allocating into its
race windows. Prints one row per strategy and workload (OS calls per
phase, libraries placed within rel32 reach at init and after, bytes placed
and relocated, race windows and losses, the worst reach), or with --json one object keyed by
strategy name. With --out DIR it also writes strategies.json (as --json),
strategies.csv, the size and region sweeps (sizes.csv, regions.csv), their
SVG plots and tables.md into DIR (made and checked writable before the
run), and prints each strategy's size limits after the table. Backends:
sim (the simulator: A-F on Windows rules, the Linux strategies on Linux
rules; the same seed gives the same table), linux (the Linux strategies on
this kernel), windows (A-F and vmm-grid on Windows) and wine (the same
under Wine: from Linux it cross-builds reachvm.exe from the source tree
around the working directory, or $REACHVM_SRC, and runs it through
scripts/wine/run.sh). A progress bar goes to standard error when it is a
terminal.`

// strategiesBackends are the backends of --backend.
var strategiesBackends = []string{"sim", "linux", "windows", "wine"}

// cmdStrategies runs the reachability-strategy matrix of package bench
// over the strategies of package bench/strategy: DynamoRIO's Windows options
// A-F on the simulator's Windows rules and the Linux strategies on the
// simulator's Linux rules or the real kernel, and prints a table, or with
// --json one object keyed by strategy name.
func cmdStrategies(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("strategies")
	cfg := bench.Config{Backend: "sim", Trials: 20, Seed: 1, RaceRate: 1}
	fs.Var(&choiceFlag{v: &cfg.Backend, valid: strategiesBackends}, "backend", "where the strategies run, `B`: sim, linux, windows or wine (see above)")
	fs.Var(&intFlag{v: &cfg.Trials, min: 1, max: maxInt}, "trials", "trials per strategy and workload, `N` >= 1, each on a fresh seeded layout")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "seed `S` of every random choice, an unsigned integer: the same seed gives the same sim table")
	fs.Var(&intFlag{v: &cfg.RaceRate, min: 0, max: 100}, "race", "percent chance `P`, in [0, 100], that another thread allocates into each race window")
	fs.Var(&listFlag{v: &cfg.Strategies, valid: strategy.Names()}, "strategy", "comma-separated strategies `S1,S2` among "+strings.Join(strategy.Names(), ", ")+" (default all)")
	fs.Var(&listFlag{v: &cfg.Workloads, valid: bench.WorkloadNames}, "workload", "comma-separated workloads `W1,W2` among "+strings.Join(bench.WorkloadNames, ", ")+" (default all)")
	asJSON := fs.Bool("json", false, "print one JSON object, one entry per strategy keyed by its name, instead of the table")
	out := fs.String("out", "", "also write the matrix, the sweeps, their plots and tables.md into `DIR`, made and checked writable before the run")
	sw := sweepFlags{trials: 10, workload: "dr", races: "0"}
	fs.Var(&intFlag{v: &sw.trials, min: 0, max: maxInt}, "sweep-trials", "with --out: trials `N` >= 0 a point of the size and region sweeps (0: no sweeps)")
	fs.Var(&choiceFlag{v: &sw.workload, valid: append(append([]string{}, bench.WorkloadNames...), "none")}, "sweep-workload", "with --out: the workload `W` placed before each probe of the size sweep: "+strings.Join(bench.WorkloadNames, ", ")+" or none")
	fs.StringVar(&sw.races, "sweep-race", "0", "with --out: comma-separated race rates `P1,P2` (percent, each in [0, 100]) of the size sweep, one set of curves each")
	if status, ok := parse("strategies", fs, args, stdout, stderr); !ok {
		return status
	}
	if fs.NArg() != 0 {
		return fail(stderr, "strategies", badUsage("unexpected arguments %q", fs.Args()))
	}
	// The sweeps' flags and the output directory are checked before the
	// matrix runs, not after.
	sc, err := sw.config(cfg)
	if err != nil {
		return fail(stderr, "strategies", badUsage("%v", err))
	}
	if *out != "" {
		if err := checkOutDir(*out); err != nil {
			return fail(stderr, "strategies", badUsage("--out %s: %v", *out, err))
		}
	}
	if cfg.Backend == "wine" {
		if runtime.GOOS != "windows" {
			return strategiesWine(fs, stdout, stderr)
		}
		if err := bench.UseSizesEnv(); err != nil {
			return fail(stderr, "strategies", err)
		}
	}
	bar := newProgress(stderr)
	cfg.Progress = bar.phase("matrix")
	rows, err := bench.Run(cfg)
	if err != nil {
		bar.done()
		fmt.Fprintln(stderr, "reachvm strategies:", err)
		return 1
	}
	var res strategiesResult
	res.rows = rows
	if *out != "" && sw.trials > 0 {
		sc.Progress = bar.phase("sizes")
		if res.sizes, err = bench.SizeSweep(sc); err == nil {
			sc.Progress = bar.phase("regions")
			res.regions, err = bench.RegionSweep(sc)
		}
		if err != nil {
			bar.done()
			fmt.Fprintln(stderr, "reachvm strategies:", err)
			return 1
		}
	}
	bar.done()
	so, pe := bench.Distributions()
	header := fmt.Sprintf("backend %s, %d trials, seed %d, race %d%%; sizes from %s (%d) and %s (%d)",
		cfg.Backend, cfg.Trials, cfg.Seed, cfg.RaceRate, so.Source, len(so.Sizes), pe.Source, len(pe.Sizes))
	if res.sizes != nil {
		header += fmt.Sprintf("; sweeps: %d trials a point, workload %s, race %s%%", sw.trials, sw.workload, sw.races)
	}
	if *out != "" {
		files, err := res.write(*out, header, cfg.Seed)
		if err != nil {
			fmt.Fprintln(stderr, "reachvm strategies:", err)
			return 1
		}
		fmt.Fprintf(stderr, "reachvm strategies: wrote %s to %s\n", strings.Join(files, ", "), *out)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(bench.ByStrategy(rows)); err != nil {
			fmt.Fprintln(stderr, "reachvm strategies:", err)
			return 1
		}
		return 0
	}
	fmt.Fprintln(stdout, header)
	if err := bench.WriteTable(stdout, rows); err != nil {
		return 1
	}
	if res.sizes != nil {
		fmt.Fprintln(stdout)
		writeLimits(stdout, res.sizes)
	}
	return 0
}

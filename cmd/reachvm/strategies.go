package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"runtime"
	"strings"

	"github.com/reachvm/reachvm/bench"
	"github.com/reachvm/reachvm/vmm/strategy"
)

// cmdStrategies runs the reachability-strategy matrix of package bench
// (issue 6) over the strategies of package vmm/strategy: DynamoRIO's
// Windows options A-F on the simulator's Windows
// rules and the Linux strategies on the simulator's Linux rules or the
// real kernel, and prints a table, or with --json one object keyed by
// strategy name.
func cmdStrategies(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("strategies", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg bench.Config
	fs.StringVar(&cfg.Backend, "backend", "sim", "sim (A-F on Windows rules, the Linux strategies on Linux rules), linux (the Linux strategies on this kernel), windows (A-F and vmm-grid on Windows) or wine (the same under Wine; from Linux, builds reachvm.exe and runs it there)")
	fs.IntVar(&cfg.Trials, "trials", 20, "trials per strategy and workload, each on a fresh seeded layout")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "seed of every random choice: the same seed gives the same sim table")
	fs.IntVar(&cfg.RaceRate, "race", 1, "percent chance that another thread allocates into each race window")
	strats := fs.String("strategy", "", "comma-separated strategies (default all: "+strings.Join(strategy.Names(), ",")+")")
	wls := fs.String("workload", "", "comma-separated workloads (default all: "+strings.Join(bench.WorkloadNames, ",")+")")
	asJSON := fs.Bool("json", false, "print one JSON object, one entry per strategy keyed by its name")
	out := fs.String("out", "", "also write to this directory: strategies.json (as --json), strategies.csv, the sweeps (sizes.csv, regions.csv), their plots (*.svg) and tables.md")
	var sw sweepFlags
	fs.IntVar(&sw.trials, "sweep-trials", 10, "with --out: trials a point of the size and region sweeps (0: no sweeps)")
	fs.StringVar(&sw.workload, "sweep-workload", "dr", "with --out: the workload placed before each probe of the size sweep ("+strings.Join(bench.WorkloadNames, ", ")+" or none)")
	fs.StringVar(&sw.races, "sweep-race", "0", "with --out: comma-separated race rates (percent) of the size sweep, one set of curves each")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "reachvm strategies: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if !contains([]string{"sim", "linux", "windows", "wine"}, cfg.Backend) {
		fmt.Fprintf(stderr, "reachvm strategies: unknown backend %q (want sim, linux, windows or wine)\n", cfg.Backend)
		return 2
	}
	if cfg.Backend == "wine" {
		if runtime.GOOS != "windows" {
			return strategiesWine(fs, stdout, stderr)
		}
		if err := bench.UseSizesEnv(); err != nil {
			fmt.Fprintln(stderr, "reachvm strategies:", err)
			return 1
		}
	}
	if cfg.Trials < 1 || cfg.RaceRate < 0 || cfg.RaceRate > 100 {
		fmt.Fprintln(stderr, "reachvm strategies: --trials must be at least 1 and --race in [0, 100]")
		return 2
	}
	if *strats != "" {
		cfg.Strategies = strings.Split(*strats, ",")
	}
	if *wls != "" {
		cfg.Workloads = strings.Split(*wls, ",")
		for _, w := range cfg.Workloads {
			if !contains(bench.WorkloadNames, w) {
				fmt.Fprintf(stderr, "reachvm strategies: unknown workload %q\n", w)
				return 2
			}
		}
	}
	// The sweeps' flags are checked before the matrix runs, not after.
	var sc bench.SweepConfig
	if *out != "" && sw.trials > 0 {
		var err error
		if sc, err = sw.config(cfg); err != nil {
			fmt.Fprintln(stderr, "reachvm strategies:", err)
			return 2
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

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

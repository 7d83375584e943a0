package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"runtime"
	"strings"

	"github.com/reachvm/reachvm/bench"
)

// cmdStrategies runs the reachability-strategy matrix of package bench
// (issue 6): DynamoRIO's Windows options A-F on the simulator's Windows
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
	strats := fs.String("strategy", "", "comma-separated strategies (default all: "+strings.Join(bench.StrategyNames, ",")+")")
	wls := fs.String("workload", "", "comma-separated workloads (default all: "+strings.Join(bench.WorkloadNames, ",")+")")
	asJSON := fs.Bool("json", false, "print one JSON object, one entry per strategy keyed by its name")
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
	rows, err := bench.Run(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "reachvm strategies:", err)
		return 1
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
	so, pe := bench.Distributions()
	fmt.Fprintf(stdout, "backend %s, %d trials, seed %d, race %d%%; sizes from %s (%d) and %s (%d)\n",
		cfg.Backend, cfg.Trials, cfg.Seed, cfg.RaceRate, so.Source, len(so.Sizes), pe.Source, len(pe.Sizes))
	if err := bench.WriteTable(stdout, rows); err != nil {
		return 1
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

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/reachvm/reachvm/bench"
)

// sweepFlags are reachvm strategies' options for the sweeps --out runs.
type sweepFlags struct {
	trials          int
	workload, races string
}

// config checks the flags and makes the sweeps' configuration from the
// matrix's (backend, seed, strategies).
func (sw sweepFlags) config(cfg bench.Config) (bench.SweepConfig, error) {
	sc := bench.SweepConfig{Config: cfg, Workload: sw.workload}
	sc.Trials, sc.Progress = sw.trials, nil
	if sw.workload != "none" && !contains(bench.WorkloadNames, sw.workload) {
		return sc, fmt.Errorf("unknown sweep workload %q", sw.workload)
	}
	for _, f := range strings.Split(sw.races, ",") {
		r, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || r < 0 || r > 100 {
			return sc, fmt.Errorf("--sweep-race %s: %q is not a percentage in [0, 100]", sw.races, f)
		}
		sc.Races = append(sc.Races, r)
	}
	return sc, nil
}

// strategiesResult is everything one run measured.
type strategiesResult struct {
	rows    []bench.Row
	sizes   []bench.SizePoint
	regions []bench.RegionPoint
}

// write puts the result into dir and returns the names written. header
// (the run's parameters) heads tables.md, so that the tables say where
// they came from.
func (res *strategiesResult) write(dir, header string, seed uint64) ([]string, error) {
	var files []bench.File
	add := func(name string, fn func(w io.Writer) error) error {
		var b bytes.Buffer
		if err := fn(&b); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		files = append(files, bench.File{Name: name, Data: b.Bytes()})
		return nil
	}
	err := add("strategies.json", func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(bench.ByStrategy(res.rows))
	})
	if err == nil {
		err = add("strategies.csv", func(w io.Writer) error { return bench.WriteCSV(w, res.rows) })
	}
	if err == nil && res.sizes != nil {
		err = add("sizes.csv", func(w io.Writer) error { return bench.WriteSizeCSV(w, res.sizes) })
	}
	if err == nil && res.regions != nil {
		err = add("regions.csv", func(w io.Writer) error { return bench.WriteRegionCSV(w, res.regions) })
	}
	if err == nil {
		err = add("tables.md", func(w io.Writer) error {
			if _, err := fmt.Fprintf(w, "%s\n\n", header); err != nil {
				return err
			}
			return bench.WriteMarkdown(w, res.rows, res.sizes, res.regions)
		})
	}
	if err != nil {
		return nil, err
	}
	files = append(files, bench.SizePlots(res.sizes, seed)...)
	files = append(files, bench.RegionPlots(res.regions, seed)...)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var names []string
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.Name), f.Data, 0o644); err != nil {
			return nil, err
		}
		names = append(names, f.Name)
	}
	return names, nil
}

// writeLimits prints the size sweep's limits: for each strategy, the
// largest library it placed reachably in every trial and in any trial.
func writeLimits(w io.Writer, pts []bench.SizePoint) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "strategy\trace\tinit: every trial\tany trial\tpost: every trial\tany trial\t")
	for _, l := range bench.SizeLimits(pts) {
		fmt.Fprintf(tw, "%s\t%d%%\t%s\t%s\t%s\t%s\t\n", l.Strategy, l.Race, size(l.InitAll), size(l.InitAny), size(l.PostAll), size(l.PostAny))
	}
	_ = tw.Flush()
}

func size(n uint64) string {
	if n == 0 {
		return "-"
	}
	return bench.SizeLabel(float64(n))
}

// progress draws a bar on stderr while the matrix and the sweeps run, and
// only when stderr is a terminal: redirected to a file or a pipe, the
// carriage returns would be noise.
type progress struct {
	w    io.Writer
	on   bool
	last string
}

func newProgress(stderr io.Writer) *progress {
	f, ok := stderr.(*os.File)
	return &progress{w: stderr, on: ok && isTerminal(f.Fd())}
}

// phase returns the callback of one phase of the run; nil when off.
func (p *progress) phase(name string) func(done, total int) {
	if !p.on {
		return nil
	}
	return func(done, total int) {
		const width = 30
		if total <= 0 {
			return
		}
		// Redraw only when the percentage moves: trials can be far
		// faster than a terminal.
		key := fmt.Sprintf("%s %d", name, done*100/total)
		if key == p.last {
			return
		}
		p.last = key
		fill := done * width / total
		fmt.Fprintf(p.w, "\rreachvm strategies: %-7s [%s%s] %3d%% %d/%d", name,
			strings.Repeat("#", fill), strings.Repeat(".", width-fill), done*100/total, done, total)
	}
}

// done clears the bar's line.
func (p *progress) done() {
	if p.on && p.last != "" {
		io.WriteString(p.w, "\r\033[K")
		p.last = ""
	}
}

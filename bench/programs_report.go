package bench

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// WriteTable prints the result: per program and runner the median wall
// seconds and the ratio to native, each runner's geometric mean; then
// /bin/true's start-up time; then every peak RSS; then what failed, each
// error numbered as its cells refer to it, and the programs not installed.
func (r *ProgramResult) WriteTable(w io.Writer) error {
	var b bytes.Buffer
	var errs []string
	cell := func(p *ProgramRow, t string, scale float64) string {
		if e, ok := p.Errors[t]; ok {
			errs = append(errs, fmt.Sprintf("[%d] %s on %s: %s", len(errs)+1, t, p.Program, e))
			return fmt.Sprintf("error [%d]", len(errs))
		}
		s, ok := p.Seconds[t]
		if !ok {
			return "-"
		}
		return fmt.Sprintf("%9.3f (%5.2fx)", s*scale, p.Ratio[t])
	}
	header := func(first string) {
		fmt.Fprintf(&b, "%-12s", first)
		for _, t := range r.Runners {
			fmt.Fprintf(&b, " %18s", t)
		}
		fmt.Fprintln(&b)
	}
	sizes := "default sizes"
	if r.Full {
		sizes = "full sizes"
	}
	if r.Scale != 1 {
		sizes += fmt.Sprintf(" x %g", r.Scale)
	}
	fmt.Fprintf(&b, "programs (%s), median of %d %s: wall seconds (ratio to native)\n", sizes, r.Runs, plural(r.Runs, "run"))
	header("program")
	for i := range r.Programs {
		p := &r.Programs[i]
		fmt.Fprintf(&b, "%-12s", p.Program)
		for _, t := range r.Runners {
			fmt.Fprintf(&b, " %18s", cell(p, t, 1))
		}
		fmt.Fprintf(&b, "  %s (%s)\n", p.Command, sizeText(p.Size, p.Unit))
	}
	fmt.Fprintf(&b, "%-12s", "geomean")
	for _, t := range r.Runners {
		g := "-"
		if n := r.GeomeanOf[t]; n > 0 {
			g = fmt.Sprintf("%5.2fx of %d", r.Geomean[t], n)
		}
		fmt.Fprintf(&b, " %18s", g)
	}
	fmt.Fprintln(&b)
	if s := r.Startup; s != nil {
		fmt.Fprintf(&b, "\nstart-up: %s, median of %d %s: milliseconds (ratio to native)\n", s.Command, s.Size, plural(int(s.Size), "run"))
		header("")
		fmt.Fprintf(&b, "%-12s", s.Program)
		for _, t := range r.Runners {
			fmt.Fprintf(&b, " %18s", cell(s, t, 1000))
		}
		fmt.Fprintln(&b)
	}
	rows := r.Programs
	if r.Startup != nil {
		rows = append([]ProgramRow{*r.Startup}, rows...)
	}
	if !r.RSSMeasured {
		fmt.Fprintf(&b, "\npeak RSS: not measured (no spawn helper: it needs gcc)\n")
		rows = nil
	} else {
		fmt.Fprintf(&b, "\npeak RSS (wait4's ru_maxrss: the runner and the program), MiB\n")
		header("program")
	}
	for _, p := range rows {
		fmt.Fprintf(&b, "%-12s", p.Program)
		for _, t := range r.Runners {
			v := "-"
			if k, ok := p.MaxRSSKiB[t]; ok {
				v = strconv.FormatFloat(float64(k)/1024, 'f', 1, 64)
			}
			fmt.Fprintf(&b, " %18s", v)
		}
		fmt.Fprintln(&b)
	}
	if len(errs) > 0 {
		fmt.Fprintln(&b, "\nerrors:")
		for _, e := range errs {
			fmt.Fprintln(&b, e)
		}
	}
	if len(r.Missing) > 0 {
		fmt.Fprintln(&b, "\nnot installed, left out:")
		for _, m := range r.Missing {
			fmt.Fprintln(&b, m)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// plural returns word with an s unless n is 1.
func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// Plot draws the ratios as bars grouped by program (the start-up first),
// one bar per runner, on a log axis from native's 1x; a runner that
// failed a program has no bar there.
func (r *ProgramResult) Plot() *Plot {
	sizes := "default sizes"
	if r.Full {
		sizes = "full sizes"
	}
	p := &Plot{
		Title:    "Programs: time relative to native (log scale)",
		Subtitle: fmt.Sprintf("%s, median of %d %s; no bar: the runner failed (see the table)", sizes, r.Runs, plural(r.Runs, "run")),
		YLabel:   "time / native time",
		YLog:     true,
		YFormat:  func(v float64) string { return strconv.FormatFloat(v, 'g', 3, 64) + "x" },
		Bars:     true,
		BarBase:  1,
	}
	rows := r.Programs
	if r.Startup != nil {
		rows = append([]ProgramRow{*r.Startup}, rows...)
	}
	for _, row := range rows {
		p.Categories = append(p.Categories, row.Program)
	}
	for _, t := range r.Runners {
		s := Series{Name: t}
		for i, row := range rows {
			y, ok := row.Ratio[t]
			if !ok {
				y = math.NaN()
			}
			s.X = append(s.X, float64(i))
			s.Y = append(s.Y, y)
		}
		p.Series = append(p.Series, s)
	}
	return p
}

// sizeText prints a workload's size in its unit: bytes in KiB or MiB.
func sizeText(n int64, unit string) string {
	if unit != "bytes" {
		return fmt.Sprintf("%d %s", n, unit)
	}
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10:
		return strings.TrimSuffix(strconv.FormatFloat(float64(n)/(1<<20), 'f', 2, 64), ".00") + " MiB"
	}
	return fmt.Sprintf("%d bytes", n)
}

package bench

import (
	"encoding/csv"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/reachvm/reachvm/bench/strategy"
	"github.com/reachvm/reachvm/mem"
)

// The files reachvm strategies --out writes: CSV for other tools, SVG
// plots, and Markdown tables for docs/strategies.md. Every writer is a
// pure function of its input, so a seeded sim run gives the same bytes.

// RowHeader is the header of the matrix CSV: Row's JSON names.
var RowHeader = []string{"strategy", "workload", "backend", "trials", "setup_failed", "failed_trials",
	"setup_calls", "place_calls", "teardown_calls", "setup_ns", "teardown_ns",
	"init_tried", "init_placed", "post_tried", "post_placed", "unreachable", "bytes_placed",
	"smallest_failed", "reloc_bytes", "race_windows", "race_losses", "max_objects", "worst_reach"}

// SizeHeader and RegionHeader head the sweep CSVs.
var (
	SizeHeader   = []string{"strategy", "workload", "backend", "race", "size", "trials", "setup_failed", "init_placed", "post_placed", "init_success", "post_success"}
	RegionHeader = []string{"strategy", "backend", "region", "trials", "setup_failed", "setup_calls", "teardown_calls", "setup_ns", "teardown_ns", "objects"}
)

func fl(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
func in(v int) string     { return strconv.Itoa(v) }
func u64(v uint64) string { return strconv.FormatUint(v, 10) }
func ns(d time.Duration) string {
	return strconv.FormatInt(int64(d), 10)
}

func writeCSV(w io.Writer, header []string, recs [][]string) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(header); err != nil {
		return err
	}
	if err := cw.WriteAll(recs); err != nil {
		return err
	}
	return cw.Error()
}

// WriteCSV writes the matrix rows as CSV under RowHeader.
func WriteCSV(w io.Writer, rows []Row) error {
	var recs [][]string
	for _, r := range rows {
		recs = append(recs, []string{r.Strategy, r.Workload, r.Backend, in(r.Trials), in(r.SetupFailed), in(r.FailedTrials),
			fl(r.SetupCalls), fl(r.PlaceCalls), fl(r.TeardownCalls), ns(r.SetupTime), ns(r.TeardownTime),
			in(r.InitTried), in(r.InitPlaced), in(r.PostTried), in(r.PostPlaced), in(r.Unreachable), u64(r.BytesPlaced),
			u64(uint64(r.SmallestFailed)), u64(r.RelocBytes), in(r.RaceWindows), in(r.RaceLosses), in(r.MaxObjects), u64(r.WorstReach)})
	}
	return writeCSV(w, RowHeader, recs)
}

// WriteSizeCSV writes the size sweep under SizeHeader.
func WriteSizeCSV(w io.Writer, pts []SizePoint) error {
	var recs [][]string
	for _, p := range pts {
		recs = append(recs, []string{p.Strategy, p.Workload, p.Backend, in(p.Race), u64(p.Size), in(p.Trials), in(p.SetupFailed),
			in(p.InitPlaced), in(p.PostPlaced), fl(p.InitSuccess()), fl(p.PostSuccess())})
	}
	return writeCSV(w, SizeHeader, recs)
}

// WriteRegionCSV writes the region sweep under RegionHeader.
func WriteRegionCSV(w io.Writer, pts []RegionPoint) error {
	var recs [][]string
	for _, p := range pts {
		recs = append(recs, []string{p.Strategy, p.Backend, u64(p.Region), in(p.Trials), in(p.SetupFailed),
			fl(p.SetupCalls), fl(p.TeardownCalls), ns(p.SetupTime), ns(p.TeardownTime), in(p.Objects)})
	}
	return writeCSV(w, RegionHeader, recs)
}

// File is a named output: a plot or table and its bytes.
type File struct {
	Name string
	Data []byte
}

// family names the OS a strategy is written for, for splitting plots:
// a dozen lines in one chart would hide each other.
func family(name string) string {
	if st, ok := strategy.New(name); ok && st.Rules() == mem.RulesWindows {
		return "windows"
	}
	return "linux"
}

// SizePlots draws placement success against library size: one chart per
// race rate, OS family (Windows strategies, Linux ones) and phase (during
// init, after it), one line per strategy. Charts without data are left
// out (a real backend runs one family).
func SizePlots(pts []SizePoint, seed uint64) []File {
	type key struct {
		race      int
		fam, post string
	}
	charts := map[key]*Plot{}
	var keys []key
	idx := map[key]map[string]int{}
	for _, p := range pts {
		for _, post := range []string{"init", "post"} {
			k := key{p.Race, family(p.Strategy), post}
			pl := charts[k]
			if pl == nil {
				phase := "during init"
				if post == "post" {
					phase = "after init"
				}
				fam := "Windows strategies"
				if k.fam == "linux" {
					fam = "Linux strategies"
				}
				pl = &Plot{
					Title: fmt.Sprintf("Placement success by library size: %s, %s", fam, phase),
					Subtitle: fmt.Sprintf("backend %s, %d trials a point, seed %d, workload %q placed first, race %d%%\nlines are drawn a pixel or two apart so that equal ones stay visible",
						p.Backend, p.Trials, seed, p.Workload, p.Race),
					XLabel: "library size (log scale)", YLabel: "trials placing it reachably",
					XLog: true, XFormat: SizeLabel, YFormat: percent, YMin: 0, YMax: 1, Dodge: true,
				}
				charts[k], idx[k] = pl, map[string]int{}
				keys = append(keys, k)
			}
			i, ok := idx[k][p.Strategy]
			if !ok {
				i = len(pl.Series)
				idx[k][p.Strategy] = i
				pl.Series = append(pl.Series, Series{Name: p.Strategy})
			}
			y := p.InitSuccess()
			if post == "post" {
				y = p.PostSuccess()
			}
			s := &pl.Series[i]
			s.X, s.Y = append(s.X, float64(p.Size)), append(s.Y, y)
		}
	}
	var out []File
	for _, k := range keys {
		name := "place-" + k.post + "-" + k.fam
		if k.race != 0 {
			name += "-race" + in(k.race)
		}
		out = append(out, File{name + ".svg", charts[k].SVG()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// RegionPlots draws set-up cost against region size: OS calls always,
// wall time when the backend measured it.
func RegionPlots(pts []RegionPoint, seed uint64) []File {
	if len(pts) == 0 {
		return nil
	}
	calls := &Plot{
		Title: "Set-up cost against region size: OS calls",
		Subtitle: fmt.Sprintf("backend %s, %d trials a point, seed %d; set-up is Setup and EndInit with no library\n4G is past rel32 reach, shown for the slope; lines a pixel or two apart so that equal ones stay visible",
			pts[0].Backend, pts[0].Trials, seed),
		XLabel: "region size (log scale)", YLabel: "OS calls to set up (log scale)",
		XLog: true, YLog: true, XFormat: SizeLabel, YFormat: CountLabel, Dodge: true,
	}
	timed := &Plot{
		Title: "Set-up cost against region size: wall time",
		Subtitle: fmt.Sprintf("backend %s, mean of %d trials a point; set-up is Setup and EndInit with no library",
			pts[0].Backend, pts[0].Trials),
		XLabel: "region size (log scale)", YLabel: "time to set up, µs (log scale)",
		XLog: true, YLog: true, XFormat: SizeLabel, YFormat: CountLabel,
	}
	hasTime := false
	add := func(pl *Plot, name string, x, y float64) {
		if n := len(pl.Series); n == 0 || pl.Series[n-1].Name != name {
			pl.Series = append(pl.Series, Series{Name: name})
		}
		s := &pl.Series[len(pl.Series)-1]
		s.X, s.Y = append(s.X, x), append(s.Y, y)
	}
	for _, p := range pts {
		if p.SetupFailed == p.Trials {
			continue
		}
		add(calls, p.Strategy, float64(p.Region), p.SetupCalls)
		if p.SetupTime > 0 {
			hasTime = true
			add(timed, p.Strategy, float64(p.Region), float64(p.SetupTime)/1e3)
		}
	}
	out := []File{{"setup-calls.svg", calls.SVG()}}
	if hasTime {
		out = append(out, File{"setup-time.svg", timed.SVG()})
	}
	return out
}

func percent(v float64) string { return strconv.FormatFloat(100*v, 'f', 0, 64) + "%" }

// WriteMarkdown writes the tables of docs/strategies.md: the matrix, the
// size sweep's limits and the region sweep's set-up cost.
func WriteMarkdown(w io.Writer, rows []Row, sizes []SizePoint, regions []RegionPoint) error {
	var b strings.Builder
	timed := false
	for _, r := range rows {
		timed = timed || r.SetupTime != 0 || r.TeardownTime != 0
	}
	if len(rows) > 0 {
		b.WriteString("| strategy | workload | failed trials | set-up calls | place calls | teardown calls | placed at init | placed after | unreachable | relocated | race windows/lost | kernel objects | worst reach | smallest failure |")
		if timed {
			b.WriteString(" set-up time | teardown time |")
		}
		b.WriteString("\n|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
		if timed {
			b.WriteString("--:|--:|")
		}
		b.WriteString("\n")
		for _, r := range rows {
			fmt.Fprintf(&b, "| %s | %s | %d/%d | %.1f | %.1f | %.1f | %d/%d | %d/%d | %d | %s | %d/%d | %d | %s | %s |",
				r.Strategy, r.Workload, r.FailedTrials, r.Trials, r.SetupCalls, r.PlaceCalls, r.TeardownCalls,
				r.InitPlaced, r.InitTried, r.PostPlaced, r.PostTried, r.Unreachable, human(r.RelocBytes),
				r.RaceWindows, r.RaceLosses, r.MaxObjects, human(r.WorstReach), human(uint64(r.SmallestFailed)))
			if timed {
				fmt.Fprintf(&b, " %v | %v |", r.SetupTime.Round(time.Microsecond/10), r.TeardownTime.Round(time.Microsecond/10))
			}
			b.WriteString("\n")
		}
	}
	if len(sizes) > 0 {
		if b.Len() > 0 {
			b.WriteString("\n")
		}
		b.WriteString("| strategy | race | largest placed in every trial, init | largest placed in any trial, init | largest placed in every trial, after init | largest placed in any trial, after init |\n|---|--:|--:|--:|--:|--:|\n")
		for _, l := range SizeLimits(sizes) {
			fmt.Fprintf(&b, "| %s | %d%% | %s | %s | %s | %s |\n", l.Strategy, l.Race,
				sizeOrDash(l.InitAll), sizeOrDash(l.InitAny), sizeOrDash(l.PostAll), sizeOrDash(l.PostAny))
		}
	}
	if len(regions) > 0 {
		if b.Len() > 0 {
			b.WriteString("\n")
		}
		var sizes []uint64
		seen := map[uint64]bool{}
		for _, p := range regions {
			if !seen[p.Region] {
				seen[p.Region] = true
				sizes = append(sizes, p.Region)
			}
		}
		head := "| strategy |"
		rule := "|---|"
		for _, s := range sizes {
			head += " " + sizeOrDash(s) + " |"
			rule += "--:|"
		}
		b.WriteString("Set-up OS calls (kernel objects held) by region size:\n\n" + head + "\n" + rule + "\n")
		writePivot(&b, regions, func(p RegionPoint) string {
			return fmt.Sprintf("%.0f (%d)", p.SetupCalls, p.Objects)
		})
		if regions[0].Backend != "sim" {
			b.WriteString("\nSet-up time / teardown time by region size (mean):\n\n" + head + "\n" + rule + "\n")
			writePivot(&b, regions, func(p RegionPoint) string {
				return fmt.Sprintf("%v / %v", p.SetupTime.Round(time.Microsecond/10), p.TeardownTime.Round(time.Microsecond/10))
			})
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func sizeOrDash(n uint64) string {
	if n == 0 {
		return "-"
	}
	return SizeLabel(float64(n))
}

// writePivot writes one table row per strategy, one cell per region size
// in order of appearance; a size whose every set-up failed shows "failed".
func writePivot(b *strings.Builder, pts []RegionPoint, cell func(RegionPoint) string) {
	for i, p := range pts {
		if i == 0 || pts[i-1].Strategy != p.Strategy {
			if i > 0 {
				b.WriteString("\n")
			}
			b.WriteString("| " + p.Strategy + " |")
		}
		if p.SetupFailed == p.Trials {
			b.WriteString(" failed |")
		} else {
			b.WriteString(" " + cell(p) + " |")
		}
	}
	b.WriteString("\n")
}

// SizeLimit summarises one strategy's curve of the size sweep.
type SizeLimit struct {
	Strategy string
	Race     int
	// InitAll is the largest size placed in every trial, with every
	// smaller size also placed in every trial; InitAny the largest size
	// placed in at least one trial. PostAll and PostAny likewise after
	// init. 0: none.
	InitAll, InitAny, PostAll, PostAny uint64
}

// SizeLimits returns the limits of each curve of pts, in order.
func SizeLimits(pts []SizePoint) []SizeLimit {
	var out []SizeLimit
	allInit, allPost := true, true
	for i, p := range pts {
		if i == 0 || pts[i-1].Strategy != p.Strategy || pts[i-1].Race != p.Race {
			out = append(out, SizeLimit{Strategy: p.Strategy, Race: p.Race})
			allInit, allPost = true, true
		}
		l := &out[len(out)-1]
		if allInit = allInit && p.InitPlaced == p.Trials && p.Trials > 0; allInit {
			l.InitAll = p.Size
		}
		if allPost = allPost && p.PostPlaced == p.Trials && p.Trials > 0; allPost {
			l.PostAll = p.Size
		}
		if p.InitPlaced > 0 {
			l.InitAny = max(l.InitAny, p.Size)
		}
		if p.PostPlaced > 0 {
			l.PostAny = max(l.PostAny, p.Size)
		}
	}
	return out
}

// The readers below parse what the writers above wrote, so that runs made
// in separate processes (scripts/wine/figures.sh runs each strategy in a
// Windows process of its own) can be merged into one set of files.

// readCSV reads a CSV written under header and calls rec for each record,
// with a getter by column name.
func readCSV(r io.Reader, header []string, rec func(get func(string) string) error) error {
	recs, err := csv.NewReader(r).ReadAll()
	if err != nil {
		return err
	}
	if len(recs) == 0 || strings.Join(recs[0], ",") != strings.Join(header, ",") {
		return fmt.Errorf("bench: CSV header is not %v", header)
	}
	col := map[string]int{}
	for i, h := range header {
		col[h] = i
	}
	for _, r := range recs[1:] {
		if err := rec(func(name string) string { return r[col[name]] }); err != nil {
			return err
		}
	}
	return nil
}

// csvNums parses a record's numeric fields, keeping the first error.
type csvNums struct {
	get func(string) string
	err error
}

func (c *csvNums) int(name string) int {
	v, err := strconv.Atoi(c.get(name))
	if err != nil && c.err == nil {
		c.err = fmt.Errorf("bench: CSV %s: %w", name, err)
	}
	return v
}

func (c *csvNums) u64(name string) uint64 {
	v, err := strconv.ParseUint(c.get(name), 10, 64)
	if err != nil && c.err == nil {
		c.err = fmt.Errorf("bench: CSV %s: %w", name, err)
	}
	return v
}

func (c *csvNums) float(name string) float64 {
	v, err := strconv.ParseFloat(c.get(name), 64)
	if err != nil && c.err == nil {
		c.err = fmt.Errorf("bench: CSV %s: %w", name, err)
	}
	return v
}

func (c *csvNums) dur(name string) time.Duration { return time.Duration(c.u64(name)) }

// ReadSizeCSV reads what WriteSizeCSV wrote.
func ReadSizeCSV(r io.Reader) ([]SizePoint, error) {
	var pts []SizePoint
	err := readCSV(r, SizeHeader, func(get func(string) string) error {
		c := csvNums{get: get}
		pts = append(pts, SizePoint{Strategy: get("strategy"), Workload: get("workload"), Backend: get("backend"),
			Race: c.int("race"), Size: c.u64("size"), Trials: c.int("trials"), SetupFailed: c.int("setup_failed"),
			InitPlaced: c.int("init_placed"), PostPlaced: c.int("post_placed")})
		return c.err
	})
	return pts, err
}

// ReadRegionCSV reads what WriteRegionCSV wrote.
func ReadRegionCSV(r io.Reader) ([]RegionPoint, error) {
	var pts []RegionPoint
	err := readCSV(r, RegionHeader, func(get func(string) string) error {
		c := csvNums{get: get}
		pts = append(pts, RegionPoint{Strategy: get("strategy"), Backend: get("backend"), Region: c.u64("region"),
			Trials: c.int("trials"), SetupFailed: c.int("setup_failed"), SetupCalls: c.float("setup_calls"),
			TeardownCalls: c.float("teardown_calls"), SetupTime: c.dur("setup_ns"), TeardownTime: c.dur("teardown_ns"),
			Objects: c.int("objects")})
		return c.err
	})
	return pts, err
}

// ReadCSV reads what WriteCSV wrote.
func ReadCSV(r io.Reader) ([]Row, error) {
	var rows []Row
	err := readCSV(r, RowHeader, func(get func(string) string) error {
		c := csvNums{get: get}
		rows = append(rows, Row{Strategy: get("strategy"), Workload: get("workload"), Backend: get("backend"),
			Trials: c.int("trials"), SetupFailed: c.int("setup_failed"), FailedTrials: c.int("failed_trials"),
			SetupCalls: c.float("setup_calls"), PlaceCalls: c.float("place_calls"), TeardownCalls: c.float("teardown_calls"),
			SetupTime: c.dur("setup_ns"), TeardownTime: c.dur("teardown_ns"),
			InitTried: c.int("init_tried"), InitPlaced: c.int("init_placed"), PostTried: c.int("post_tried"), PostPlaced: c.int("post_placed"),
			Unreachable: c.int("unreachable"), BytesPlaced: c.u64("bytes_placed"), SmallestFailed: uintptr(c.u64("smallest_failed")),
			RelocBytes: c.u64("reloc_bytes"), RaceWindows: c.int("race_windows"), RaceLosses: c.int("race_losses"),
			MaxObjects: c.int("max_objects"), WorstReach: c.u64("worst_reach")})
		return c.err
	})
	return rows, err
}

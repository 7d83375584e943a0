package bench

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/reachvm/reachvm/bench/strategy"
	"github.com/reachvm/reachvm/internal/osmem"
	"github.com/reachvm/reachvm/internal/osmem/sim"
	"github.com/reachvm/reachvm/mem"
)

// Config configures a matrix run.
type Config struct {
	// Backend is "sim" (Windows strategies on sim-windows, Linux ones on
	// sim-linux), "linux" (the Linux strategies on the native backend) or
	// "windows" (A-F and vmm-grid on the native backend of Windows) or
	// "wine" (the same, under Wine, which the backend checks).
	Backend string
	// Trials per strategy and workload; Seed seeds everything.
	Trials int
	Seed   uint64
	// RaceRate is the chance that the intruder (another thread) allocates
	// into each race window, in percent. The sim only.
	RaceRate int
	// Strategies and Workloads restrict the matrix; nil: all.
	Strategies, Workloads []string
	// Progress, if set, is told after every trial how many of how many
	// are done (reachvm strategies draws its progress bar with it).
	Progress func(done, total int)
}

// Row is the result of one strategy on one workload over all trials.
type Row struct {
	Strategy string `json:"strategy"`
	Workload string `json:"workload"`
	Backend  string `json:"backend"`
	Trials   int    `json:"trials"`
	// SetupFailed counts trials whose Setup failed, or whose EndInit
	// could not claim the region (A and C reserve it only then).
	SetupFailed int `json:"setup_failed"`
	// FailedTrials counts trials in which any library could not be placed
	// reachably (failure rate over random layouts).
	FailedTrials int `json:"failed_trials"`
	// Mean OS calls per trial to set up, place everything (init, post,
	// unload, reload) and tear down.
	SetupCalls    float64 `json:"setup_calls"`
	PlaceCalls    float64 `json:"place_calls"`
	TeardownCalls float64 `json:"teardown_calls"`
	// Mean wall time; only on real backends (zero on sim, whose output
	// must not depend on the machine's speed).
	SetupTime    time.Duration `json:"setup_ns,omitempty"`
	TeardownTime time.Duration `json:"teardown_ns,omitempty"`
	// Libraries tried and placed reachably, at init and after.
	InitTried  int `json:"init_tried"`
	InitPlaced int `json:"init_placed"`
	PostTried  int `json:"post_tried"`
	PostPlaced int `json:"post_placed"`
	// Unreachable counts libraries placed but out of rel32 reach.
	Unreachable int `json:"unreachable"`
	// BytesPlaced sums the sizes placed reachably.
	BytesPlaced uint64 `json:"bytes_placed"`
	// SmallestFailed is the smallest library that failed (0: none).
	SmallestFailed uintptr `json:"smallest_failed"`
	// RelocBytes sums the sizes of images placed at a non-preferred base:
	// an upper bound on the pages relocation writes.
	RelocBytes uint64 `json:"reloc_bytes"`
	// RaceWindows and RaceLosses count release-to-map gaps and those in
	// which the intruder took the addresses.
	RaceWindows int `json:"race_windows"`
	RaceLosses  int `json:"race_losses"`
	// MaxObjects is the largest number of kernel objects (reservations and
	// views; VMAs on Linux) the strategy held, at the peak.
	MaxObjects int `json:"max_objects"`
	// WorstReach is the largest distance from any byte of the region to
	// any byte of a placed library.
	WorstReach uint64 `json:"worst_reach"`
}

// Run runs the matrix and returns one row per strategy and workload, in
// strategy.Names then WorkloadNames order.
func Run(cfg Config) ([]Row, error) {
	if cfg.Trials <= 0 {
		cfg.Trials = 1
	}
	if cfg.Backend == "" {
		cfg.Backend = "sim"
	}
	names := cfg.Strategies
	if names == nil {
		names = strategy.Names()
	}
	wls := cfg.Workloads
	if wls == nil {
		wls = WorkloadNames
	}
	total, done := 0, 0
	for _, name := range names {
		if st, ok := strategy.New(name); ok && runsOn(cfg.Backend, st) {
			total += len(wls) * cfg.Trials
		}
	}
	var rows []Row
	for _, name := range names {
		st, ok := strategy.New(name)
		if !ok {
			return nil, fmt.Errorf("bench: unknown strategy %q", name)
		}
		if !runsOn(cfg.Backend, st) {
			continue
		}
		for wi, wl := range wls {
			row := Row{Strategy: name, Workload: wl, Backend: cfg.Backend}
			for t := 0; t < cfg.Trials; t++ {
				// The seed does not depend on the strategy: every strategy
				// meets the same layouts and libraries, trial for trial.
				seed := cfg.Seed*1_000_003 + uint64(wi)*101 + uint64(t)
				if err := trial(cfg, name, wl, t, seed, &row); err != nil {
					return nil, fmt.Errorf("bench: %s/%s trial %d: %w", name, wl, t, err)
				}
				if done++; cfg.Progress != nil {
					cfg.Progress(done, total)
				}
			}
			n := float64(cfg.Trials)
			row.SetupCalls /= n
			row.PlaceCalls /= n
			row.TeardownCalls /= n
			row.SetupTime /= time.Duration(cfg.Trials)
			row.TeardownTime /= time.Duration(cfg.Trials)
			rows = append(rows, row)
		}
	}
	return rows, nil
}

// trial runs one strategy on one workload and layout and adds to row.
func trial(cfg Config, name, wl string, t int, seed uint64, row *Row) error {
	// r draws the layout and the workload; ri the intruder's choices, so
	// that strategies opening more windows see the same libraries.
	r := rand.New(rand.NewPCG(seed, 0xbe_4c4))
	ri := rand.New(rand.NewPCG(seed, 0x1a7_da7a))
	st, _ := strategy.New(name)
	raw, intr, done, err := openBackend(cfg, st, t, seed, r, ri)
	if err != nil {
		return err
	}
	defer done()
	w := MakeWorkload(wl, r)
	c := NewCounting(raw)
	st.SetIntruder(intr)
	row.Trials++

	t0 := wallNow()
	if err := st.Setup(c); err != nil {
		row.SetupFailed++
		row.FailedTrials++
		return nil
	}
	setupTime := wallNow() - t0
	row.SetupCalls += float64(c.Calls())
	region := st.Region()
	lo, hi := region.Start, region.End
	before := c.Calls()

	failed := false
	var views []strategy.View
	place := func(l strategy.Lib, post bool) {
		v, err := st.Place(l, post)
		if err != nil {
			failed = true
			if row.SmallestFailed == 0 || l.Size < row.SmallestFailed {
				row.SmallestFailed = l.Size
			}
			return
		}
		d := v.Distance(region)
		row.WorstReach = max(row.WorstReach, d)
		if !v.Reachable(region) {
			row.Unreachable++
			failed = true
		} else {
			row.BytesPlaced += uint64(v.Size)
			if post {
				row.PostPlaced++
			} else {
				row.InitPlaced++
			}
		}
		if v.Relocated {
			row.RelocBytes += uint64(v.Size)
		}
		views = append(views, v)
	}
	for _, l := range w.Init {
		row.InitTried++
		place(l, false)
	}
	if err := st.EndInit(); err != nil {
		if !claimFailed(err) {
			return err
		}
		// A and C claim their region only now: a region they cannot
		// claim is a failed set-up, as D's or E's would be in Setup.
		row.SetupFailed++
		row.FailedTrials++
		wn, ls := st.Races()
		row.RaceWindows += wn
		row.RaceLosses += ls
		return st.Teardown()
	}
	for _, l := range w.Post {
		row.PostTried++
		place(l, true)
	}
	row.MaxObjects = max(row.MaxObjects, objects(raw, lo, hi, views))
	// Unload every other library, then load them again, after init.
	var again []strategy.Lib
	kept := views[:0:0]
	for i, v := range views {
		if i%2 == 0 {
			if err := st.Unload(v); err != nil {
				return err
			}
			again = append(again, v.Lib)
		} else {
			kept = append(kept, v)
		}
	}
	views = kept
	for _, l := range again {
		row.PostTried++
		place(l, true)
	}
	row.PlaceCalls += float64(c.Calls() - before)
	if failed {
		row.FailedTrials++
	}
	wn, ls := st.Races()
	row.RaceWindows += wn
	row.RaceLosses += ls

	before = c.Calls()
	t0 = wallNow()
	if err := st.Teardown(); err != nil {
		return err
	}
	if cfg.Backend != "sim" {
		row.SetupTime += setupTime
		row.TeardownTime += wallNow() - t0
	}
	row.TeardownCalls += float64(c.Calls() - before)
	if s, ok := raw.(*sim.OS); ok {
		if err := s.Check(); err != nil {
			return err
		}
	}
	return nil
}

// claimFailed says whether an EndInit error is the OS refusing part of
// the region (ERROR_INVALID_ADDRESS, EEXIST): under Wine, C's range
// placed by the OS can hold host mappings VirtualQuery calls free, and its
// reservation at the end of init then fails. That is the strategy's
// failure, counted; any other error is the harness's and stops the run.
func claimFailed(err error) bool { return errors.Is(err, mem.ErrExists) }

// runsOn says whether st runs on backend: the sim runs every strategy
// under its own rules, a real OS only the strategies written for it.
func runsOn(backend string, st strategy.Strategy) bool {
	switch backend {
	case "linux":
		return st.Rules() == mem.RulesLinux
	case "windows", "wine":
		return st.Rules() == mem.RulesWindows
	}
	return true
}

// openBackend gives a trial of st its OS: a fresh simulator with a seeded
// layout drawn from r (trial t picks the fragmentation), or the real
// kernel; intr is the "other thread" that allocates into race windows
// (choices from ri), and done undoes what it allocated. The matrix and
// the sweeps share it, so that every backend serves both.
func openBackend(cfg Config, st strategy.Strategy, t int, seed uint64, r, ri *rand.Rand) (raw mem.OS, intr func(free mem.Range), done func(), err error) {
	var foreign [][2]uintptr
	switch cfg.Backend {
	case "sim":
		s := sim.New(st.Rules(), sim.Options{Seed: int64(seed%(1<<62)) + 1})
		layout(s, Fragmentation[t%len(Fragmentation)], r)
		raw = s
		intr = func(free mem.Range) {
			if cfg.RaceRate > 0 && ri.IntN(100) < cfg.RaceRate {
				_ = s.MapForeign(free.Start, free.Start+s.Granularity(), mem.ProtRW, "")
			}
		}
	case "linux":
		raw = osmem.Native()
		if raw.Rules() != mem.RulesLinux {
			return nil, nil, nil, fmt.Errorf("backend linux needs Linux")
		}
		intr = func(free mem.Range) {
			if cfg.RaceRate > 0 && ri.IntN(100) < cfg.RaceRate {
				if a, err := raw.Reserve(free.Start, raw.Granularity(), mem.Exact); err == nil {
					foreign = append(foreign, [2]uintptr{a, a + raw.Granularity()})
				}
			}
		}
	case "windows", "wine":
		// A-F and vmm-grid on VirtualAlloc and MapViewOfFileEx, the
		// intruder on another OS thread (backend_windows.go); "wine"
		// is the same backend, named so that figures from Wine say so.
		// The sim's layout is drawn and dropped, so that r then yields
		// the libraries the sim's trial t places: the figures compare
		// trial for trial.
		layout(sim.New(st.Rules(), sim.Options{Seed: int64(seed%(1<<62)) + 1}), Fragmentation[t%len(Fragmentation)], r)
		raw, intr, err = windowsBackend(cfg, ri, &foreign)
		if err != nil {
			return nil, nil, nil, err
		}
	default:
		return nil, nil, nil, fmt.Errorf("unknown backend %q", cfg.Backend)
	}
	done = func() {
		for _, f := range foreign {
			_ = raw.Release(f[0], f[1]-f[0])
		}
	}
	return raw, intr, done, nil
}

// objects counts the kernel objects of the region and of the views outside
// it: allocations (distinct bases) under Windows rules, VMAs under Linux.
func objects(o mem.OS, lo, hi uintptr, views []strategy.View) int {
	regs, err := o.Regions(lo, hi)
	if err != nil {
		return 0
	}
	n := 0
	var last uintptr
	for i, r := range regs {
		if i == 0 || r.AllocBase != last || o.Rules() == mem.RulesLinux {
			n++
		}
		last = r.AllocBase
	}
	for _, v := range views {
		if v.Addr+v.Size <= lo || v.Addr >= hi {
			n++
		}
	}
	return n
}

// WriteTable prints rows as an aligned text table.
func WriteTable(w io.Writer, rows []Row) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%-13s %-3s %-7s %6s %6s %8s %8s %8s %9s %9s %5s %9s %9s %9s %7s %8s %9s\n",
		"strategy", "wl", "backend", "trials", "fail%", "setup", "place", "teardown", "init", "post", "unrch", "bytes", "reloc", "race w/l", "objs", "reach", "minfail")
	for _, r := range rows {
		fail := 0.0
		if r.Trials > 0 {
			fail = 100 * float64(r.FailedTrials) / float64(r.Trials)
		}
		fmt.Fprintf(&b, "%-13s %-3s %-7s %6d %6.1f %8.1f %8.1f %8.1f %9s %9s %5d %9s %9s %9s %7d %8s %9s\n",
			r.Strategy, r.Workload, r.Backend, r.Trials, fail, r.SetupCalls, r.PlaceCalls, r.TeardownCalls,
			fmt.Sprintf("%d/%d", r.InitPlaced, r.InitTried), fmt.Sprintf("%d/%d", r.PostPlaced, r.PostTried),
			r.Unreachable, human(r.BytesPlaced), human(r.RelocBytes),
			fmt.Sprintf("%d/%d", r.RaceWindows, r.RaceLosses), r.MaxObjects, human(r.WorstReach), human(uint64(r.SmallestFailed)))
		if r.SetupTime != 0 || r.TeardownTime != 0 {
			fmt.Fprintf(&b, "%-13s   setup %v, teardown %v (mean)\n", "", r.SetupTime, r.TeardownTime)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func human(n uint64) string {
	switch {
	case n == 0:
		return "-"
	case n >= 1<<30:
		return fmt.Sprintf("%.1fG", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fM", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%dK", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// ByStrategy groups rows by strategy name, the JSON shape of
// `reachvm strategies --json`.
func ByStrategy(rows []Row) map[string][]Row {
	out := map[string][]Row{}
	for _, r := range rows {
		out[r.Strategy] = append(out[r.Strategy], r)
	}
	return out
}

// Names returns the keys of m sorted, for callers that print in order.
func Names(m map[string][]Row) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

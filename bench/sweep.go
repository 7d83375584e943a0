package bench

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"time"

	"github.com/reachvm/reachvm/bench/strategy"
	"github.com/reachvm/reachvm/internal/osmem/sim"
)

// The sweeps answer the two questions the matrix answers only at default
// sizes: up to what library size does each strategy still place
// reachably (SizeSweep), and how does its set-up cost grow with the
// region (RegionSweep)?

// DefaultLibSizes are the probe sizes of the size sweep: 64 KiB to 4 GiB,
// two points an octave (2^k and 1.5*2^k). The range runs past 2 GiB so
// that every strategy's limit shows, F's (1.5 GiB outside a 512 MiB
// region) and the rel32 window's own.
func DefaultLibSizes() []uintptr {
	var out []uintptr
	for s := uintptr(64 << 10); s <= 4<<30; s *= 2 {
		out = append(out, s)
		if s < 4<<30 {
			out = append(out, s+s/2)
		}
	}
	return out
}

// DefaultRegionSizes are the region sizes of the region sweep. 4 GiB is
// beyond rel32 reach and only there to show how set-up cost scales.
var DefaultRegionSizes = []uintptr{256 << 20, 512 << 20, 1 << 30, 2 << 30, 4 << 30}

// SweepConfig configures the sweeps. Config's Backend, Trials, Seed,
// RaceRate, Strategies and Progress apply; Workloads does not.
type SweepConfig struct {
	Config
	// Workload is placed (init and post-init libraries) before each probe:
	// the probe must fit on top of it. "none" places nothing; "" is "dr".
	Workload string
	// Sizes are the probe sizes (nil: DefaultLibSizes) and Regions the
	// region sizes (nil: DefaultRegionSizes).
	Sizes, Regions []uintptr
	// Races are the race rates (percent, as RaceRate) the size sweep runs
	// at, each a separate curve; nil: just RaceRate. At 0 the sweep
	// measures room alone; above it, also what a grid's one window per
	// released slot costs a large library.
	Races []int
}

// SizePoint is one strategy's placement success at one library size.
type SizePoint struct {
	Strategy    string `json:"strategy"`
	Workload    string `json:"workload"`
	Backend     string `json:"backend"`
	Size        uint64 `json:"size"`
	Race        int    `json:"race"`
	Trials      int    `json:"trials"`
	SetupFailed int    `json:"setup_failed"`
	// InitPlaced and PostPlaced count the trials whose probe was placed
	// reachably during init and after it.
	InitPlaced int `json:"init_placed"`
	PostPlaced int `json:"post_placed"`
}

// InitSuccess and PostSuccess are the fractions of trials that placed the
// probe reachably.
func (p SizePoint) InitSuccess() float64 { return frac(p.InitPlaced, p.Trials) }
func (p SizePoint) PostSuccess() float64 { return frac(p.PostPlaced, p.Trials) }

func frac(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// RegionPoint is one strategy's set-up and teardown cost at one region
// size.
type RegionPoint struct {
	Strategy    string `json:"strategy"`
	Backend     string `json:"backend"`
	Region      uint64 `json:"region"`
	Trials      int    `json:"trials"`
	SetupFailed int    `json:"setup_failed"`
	// Mean OS calls over the trials whose set-up succeeded.
	SetupCalls    float64 `json:"setup_calls"`
	TeardownCalls float64 `json:"teardown_calls"`
	// Mean wall times, real backends only (zero on sim).
	SetupTime    time.Duration `json:"setup_ns,omitempty"`
	TeardownTime time.Duration `json:"teardown_ns,omitempty"`
	// Objects is the number of kernel objects right after set-up (the
	// largest over the trials).
	Objects int `json:"objects"`
}

// sweepSeed is the seed of trial t of a sweep: independent of the
// strategy and of the size, so that every strategy and every size meets
// the same layouts and workloads, and success can only fall as the size
// grows (without races, placing s implies placing anything smaller).
func sweepSeed(seed uint64, t int) uint64 { return seed*1_000_003 + 500_009 + uint64(t) }

// SizeSweep places, for every strategy and size, a probe library on top
// of the workload, once during init and once after it, in cfg.Trials
// fresh layouts, and counts the reachable placements. On sim the cells
// run in parallel; the result does not depend on it.
func SizeSweep(cfg SweepConfig) ([]SizePoint, error) {
	cfg.defaults()
	sizes := cfg.Sizes
	if sizes == nil {
		sizes = DefaultLibSizes()
	}
	if cfg.Workload != "none" && !contains(WorkloadNames, cfg.Workload) {
		return nil, fmt.Errorf("bench: unknown workload %q", cfg.Workload)
	}
	names, err := cfg.strategies()
	if err != nil {
		return nil, err
	}
	races := cfg.Races
	if races == nil {
		races = []int{cfg.RaceRate}
	}
	var pts []SizePoint
	for _, race := range races {
		for _, n := range names {
			for _, s := range sizes {
				pts = append(pts, SizePoint{Strategy: n, Workload: cfg.Workload, Backend: cfg.Backend, Size: uint64(s), Race: race})
			}
		}
	}
	err = cfg.each(len(pts), func(i, t int) error {
		p := &pts[i]
		c := cfg
		c.RaceRate = p.Race
		if err := sizeTrial(c, p.Strategy, uintptr(p.Size), t, p); err != nil {
			return fmt.Errorf("bench: size sweep %s at %d bytes, race %d%%: %w", p.Strategy, p.Size, p.Race, err)
		}
		return nil
	})
	return pts, err
}

func sizeTrial(cfg SweepConfig, name string, size uintptr, t int, p *SizePoint) error {
	seed := sweepSeed(cfg.Seed, t)
	r := rand.New(rand.NewPCG(seed, 0xbe_4c4))
	ri := rand.New(rand.NewPCG(seed, 0x1a7_da7a))
	st, _ := strategy.New(name)
	raw, intr, done, err := openBackend(cfg.Config, st, t, seed, r, ri)
	if err != nil {
		return err
	}
	defer done()
	var w Workload
	if cfg.Workload != "none" {
		w = MakeWorkload(cfg.Workload, r)
	}
	st.SetIntruder(intr)
	p.Trials++
	if err := st.Setup(raw); err != nil {
		p.SetupFailed++
		return nil
	}
	region := st.Region()
	// No preferred base: the sweep measures room, the matrix relocation.
	probe := strategy.Lib{Name: "probe", Size: size}
	placed := func(post bool) (strategy.View, bool) {
		v, err := st.Place(probe, post)
		if err != nil {
			return strategy.View{}, false
		}
		// An unreachable placement (B, a spill) still occupies memory:
		// keep it as a view so that teardown frees it.
		return v, v.Reachable(region)
	}
	for _, l := range w.Init {
		_, _ = st.Place(l, false)
	}
	v, ok := placed(false)
	if ok {
		p.InitPlaced++
	}
	if err := st.EndInit(); err != nil {
		if !claimFailed(err) {
			return err
		}
		// The region could not be claimed (as in the matrix): a failed
		// set-up, whatever the init probe did.
		if ok {
			p.InitPlaced--
		}
		p.SetupFailed++
		return st.Teardown()
	}
	// The init probe goes again, so that the post-init probe meets the
	// workload alone.
	if v.Size != 0 {
		if err := st.Unload(v); err != nil {
			return fmt.Errorf("unloading the init probe: %w", err)
		}
	}
	for _, l := range w.Post {
		_, _ = st.Place(l, true)
	}
	if _, ok := placed(true); ok {
		p.PostPlaced++
	}
	if err := st.Teardown(); err != nil {
		return err
	}
	if s, ok := raw.(*sim.OS); ok {
		return s.Check()
	}
	return nil
}

// RegionSweep sets up (Setup and EndInit, no libraries) and tears down
// every strategy with every region size, cfg.Trials times on fresh layouts, and measures the OS calls (and
// on real backends the time) of each. linux-near has no region to size
// and is left out.
func RegionSweep(cfg SweepConfig) ([]RegionPoint, error) {
	cfg.defaults()
	regions := cfg.Regions
	if regions == nil {
		regions = DefaultRegionSizes
	}
	names, err := cfg.strategies()
	if err != nil {
		return nil, err
	}
	var pts []RegionPoint
	for _, n := range names {
		if _, sized := strategy.NewRegion(n, 1<<30); !sized {
			continue
		}
		for _, s := range regions {
			pts = append(pts, RegionPoint{Strategy: n, Backend: cfg.Backend, Region: uint64(s)})
		}
	}
	err = cfg.each(len(pts), func(i, t int) error {
		if err := regionTrial(cfg, t, &pts[i]); err != nil {
			return fmt.Errorf("bench: region sweep %s at %d bytes: %w", pts[i].Strategy, pts[i].Region, err)
		}
		return nil
	})
	for i := range pts {
		p := &pts[i]
		if ok := p.Trials - p.SetupFailed; ok > 0 {
			p.SetupCalls /= float64(ok)
			p.TeardownCalls /= float64(ok)
			p.SetupTime /= time.Duration(ok)
			p.TeardownTime /= time.Duration(ok)
		}
	}
	return pts, err
}

func regionTrial(cfg SweepConfig, t int, p *RegionPoint) error {
	seed := sweepSeed(cfg.Seed, t)
	r := rand.New(rand.NewPCG(seed, 0xbe_4c4))
	ri := rand.New(rand.NewPCG(seed, 0x1a7_da7a))
	st, _ := strategy.NewRegion(p.Strategy, uintptr(p.Region))
	raw, intr, done, err := openBackend(cfg.Config, st, t, seed, r, ri)
	if err != nil {
		return err
	}
	defer done()
	st.SetIntruder(intr)
	c := NewCounting(raw)
	p.Trials++
	// Set-up ends with EndInit: A and C reserve their region only then.
	t0 := wallNow()
	if err := st.Setup(c); err != nil {
		p.SetupFailed++
		return nil
	}
	if err := st.EndInit(); err != nil {
		if !claimFailed(err) {
			return err
		}
		p.SetupFailed++
		return st.Teardown()
	}
	setup := wallNow() - t0
	calls := c.Calls()
	region := st.Region()
	lo, hi := region.Start, region.End
	p.Objects = max(p.Objects, objects(raw, lo, hi, nil))
	t0 = wallNow()
	if err := st.Teardown(); err != nil {
		return err
	}
	if cfg.Backend != "sim" {
		p.SetupTime += setup
		p.TeardownTime += wallNow() - t0
	}
	p.SetupCalls += float64(calls)
	p.TeardownCalls += float64(c.Calls() - calls)
	if s, ok := raw.(*sim.OS); ok {
		return s.Check()
	}
	return nil
}

func (cfg *SweepConfig) defaults() {
	if cfg.Trials <= 0 {
		cfg.Trials = 1
	}
	if cfg.Backend == "" {
		cfg.Backend = "sim"
	}
	if cfg.Workload == "" {
		cfg.Workload = "dr"
	}
}

// strategies returns the strategies the sweep runs on cfg's backend.
func (cfg *SweepConfig) strategies() ([]string, error) {
	names := cfg.Strategies
	if names == nil {
		names = strategy.Names()
	}
	var out []string
	for _, n := range names {
		st, ok := strategy.New(n)
		if !ok {
			return nil, fmt.Errorf("bench: unknown strategy %q", n)
		}
		if runsOn(cfg.Backend, st) {
			out = append(out, n)
		}
	}
	return out, nil
}

// each runs cfg.Trials trials of each of n cells, reporting progress. On
// sim the cells run on GOMAXPROCS workers: each cell owns its result and
// its trials' seeds, so the outcome is the same as in sequence. A real
// backend runs them in sequence: trials in one process would meet each
// other's mappings and intruders.
func (cfg *SweepConfig) each(n int, trial func(i, t int) error) error {
	var (
		mu   sync.Mutex
		done int
	)
	tick := func() {
		if cfg.Progress == nil {
			return
		}
		mu.Lock()
		done++
		cfg.Progress(done, n*cfg.Trials)
		mu.Unlock()
	}
	errs := make([]error, n)
	cell := func(i int) {
		for t := 0; t < cfg.Trials; t++ {
			if err := trial(i, t); err != nil {
				errs[i] = fmt.Errorf("trial %d: %w", t, err)
				return
			}
			tick()
		}
	}
	workers := 1
	if cfg.Backend == "sim" {
		workers = runtime.GOMAXPROCS(0)
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				cell(i)
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return errors.Join(errs...)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

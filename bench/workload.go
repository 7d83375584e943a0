package bench

import (
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/reachvm/reachvm/bench/strategy"
	"github.com/reachvm/reachvm/internal/osmem/sim"
	"github.com/reachvm/reachvm/mem"
)

// Directories the size distributions are read from.
const (
	SODir = "/usr/lib/x86_64-linux-gnu"
	PEDir = "/usr/lib/x86_64-linux-gnu/wine/x86_64-windows"
)

// DynamoRIO 7.1.0's sizes, as its issue #3570 lists them: the fallback distribution
// when the directories are absent, and the named libraries of the "dr"
// workload.
var drSizes = []uintptr{
	64 << 10, 128 << 10, 256 << 10, 384 << 10, 512 << 10, 600 << 10, // extensions < 640 KiB
	1740 << 10, // dbghelp 1.7 MiB
	7373 << 10, // drmemorylib 7.2 MiB (debug)
}

// Sizes is a sorted size distribution and where it came from.
type Sizes struct {
	Source string
	Sizes  []uintptr
}

var (
	sizesOnce        sync.Once
	soSizes, peSizes Sizes
)

// readSizes lists the sizes of the regular files in dir whose name
// matches keep, sorted; nil if the directory is absent.
func readSizes(dir string, keep func(string) bool) []uintptr {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []uintptr
	for _, e := range ents {
		if !e.Type().IsRegular() || !keep(e.Name()) {
			continue
		}
		if fi, err := e.Info(); err == nil && fi.Size() > 0 {
			out = append(out, uintptr(fi.Size()))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Distributions returns the .so and PE DLL size distributions of this
// machine, read once, each falling back to DR's numbers.
func Distributions() (so, pe Sizes) {
	sizesOnce.Do(func() {
		soSizes = Sizes{SODir, readSizes(SODir, func(n string) bool { return strings.Contains(n, ".so") })}
		peSizes = Sizes{PEDir, readSizes(PEDir, func(n string) bool { return strings.HasSuffix(n, ".dll") })}
		for _, s := range []*Sizes{&soSizes, &peSizes} {
			if len(s.Sizes) == 0 {
				s.Source, s.Sizes = "dr-7.1.0", drSizes
			}
		}
	})
	return soSizes, peSizes
}

// Workload is what one trial places: libraries at init, reachable maps
// after init; half of everything placed is then unloaded and reloaded.
type Workload struct {
	Name       string
	Init, Post []strategy.Lib
}

// WorkloadNames are the workloads of the matrix.
var WorkloadNames = []string{"dr", "so", "pe"}

// MakeWorkload draws workload name from r: "dr" is DR's client set
// (drmemorylib, dbghelp, four extensions) with eight post-init maps drawn
// from the PE distribution; "so" and "pe" draw eight init and eight
// post-init libraries from the .so and PE distributions. ELF objects are
// position-independent and have no preferred base.
func MakeWorkload(name string, r *rand.Rand) Workload {
	so, pe := Distributions()
	// PE images are rebased one after another from the default DLL base,
	// as DynamoRIO gives its client libraries distinct preferred bases:
	// A, whose region starts there when it can, pays no relocation, and C,
	// which packs from the top, pays for all of them.
	const gran = 64 << 10 // Windows' allocation granularity
	next := uintptr(strategy.DefaultPref)
	rebase := func(l strategy.Lib) strategy.Lib {
		l.Pref = next
		size, _ := mem.AlignUp(l.Size, gran) // workload sizes are at most 64 MiB
		next += size
		return l
	}
	draw := func(d Sizes, n int, prefix string) []strategy.Lib {
		out := make([]strategy.Lib, n)
		for i := range out {
			out[i] = strategy.Lib{Name: prefix + itoa(i), Size: d.Sizes[r.IntN(len(d.Sizes))]}
			if d.Source != SODir {
				out[i] = rebase(out[i])
			}
		}
		return out
	}
	w := Workload{Name: name}
	switch name {
	case "dr":
		w.Init = []strategy.Lib{
			rebase(strategy.Lib{Name: "drmemorylib.dll", Size: drSizes[7]}),
			rebase(strategy.Lib{Name: "dbghelp.dll", Size: drSizes[6]}),
		}
		for i := 0; i < 4; i++ {
			w.Init = append(w.Init, rebase(strategy.Lib{Name: "ext" + itoa(i) + ".dll", Size: drSizes[r.IntN(6)]}))
		}
		w.Post = draw(pe, 8, "map")
	case "so":
		w.Init, w.Post = draw(so, 8, "lib"), draw(so, 8, "map")
	default:
		w.Init, w.Post = draw(pe, 8, "dll"), draw(pe, 8, "map")
	}
	return w
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

// Fragmentation levels: how many foreign mappings layout scatters near
// where the strategies place their regions.
var Fragmentation = []int{0, 64, 512}

// layout pre-populates s with n foreign mappings (64 KiB to 64 MiB,
// granularity aligned) scattered ASLR-like over the 16 GiB where the
// simulator puts new mappings: bottom-up from its low bound under Windows
// rules, below the (randomised) mmap base under Linux rules.
func layout(s *sim.OS, n int, r *rand.Rand) {
	gran := s.Granularity()
	lo, hi := s.Bounds()
	const span = 16 << 30
	if s.Rules() == mem.RulesLinux {
		hi = s.MmapBase()
		lo = hi - span
	} else {
		hi = lo + span
	}
	for i := 0; i < n; i++ {
		size := uintptr(1) << (16 + r.IntN(11)) // 64 KiB .. 64 MiB
		at := lo + uintptr(r.Uint64N(uint64((hi-lo-size)/gran)))*gran
		prot := mem.ProtRW
		if r.IntN(4) == 0 {
			prot = mem.ProtNone
		}
		_ = s.MapForeign(at, at+size, prot, "") // overlaps are skipped
	}
}

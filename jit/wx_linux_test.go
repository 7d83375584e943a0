//go:build linux

package jit_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/reachvm/reachvm/jit"
	"github.com/reachvm/reachvm/jit/internal/amd64"
	"github.com/reachvm/reachvm/vmcode"
	"github.com/reachvm/reachvm/vmm"
	"github.com/reachvm/reachvm/vmm/vmmtest"
)

// stressDuration is how long the W^X stress run lasts: 2 s, 10 s with
// REACHVM_SOAK=1 (.ci/run's race pass).
func stressDuration() time.Duration {
	if os.Getenv("REACHVM_SOAK") == "1" {
		return 10 * time.Second
	}
	return 2 * time.Second
}

// mapsWatch is what a watcher saw in /proc/self/maps.
type mapsWatch struct {
	scans int
	// wx holds every line seen writable and executable at once: anywhere
	// in the process under W^X, inside vmcode otherwise.
	wx []string
	// execWritable holds lines inside vmcode seen writable (under W^X the
	// executable view of code units is never writable), aliasExec lines
	// inside the writable view seen executable.
	execWritable, aliasExec []string
	// execRX and aliasRW count lines seen r-x inside vmcode and rw- inside
	// the writable view: proof that the watcher saw live units.
	execRX, aliasRW int
}

// mapsLine is one parsed line of /proc/self/maps.
type mapsLine struct {
	start, end uintptr
	perms      string
	name       string
}

// readMaps parses /proc/self/maps.
func readMaps(t testing.TB) []mapsLine {
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Error(err)
		return nil
	}
	var out []mapsLine
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		lo, hi, _ := strings.Cut(f[0], "-")
		a, err1 := strconv.ParseUint(lo, 16, 64)
		z, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || len(f[1]) != 4 {
			t.Errorf("bad maps line %q", line)
			continue
		}
		l := mapsLine{start: uintptr(a), end: uintptr(z), perms: f[1]}
		if len(f) >= 6 {
			l.name = strings.Join(f[5:], " ")
		}
		out = append(out, l)
	}
	return out
}

// watchMaps reads /proc/self/maps in a loop until stop is closed, judging
// every line, and returns what it saw. rwLo and rwHi bound the writable
// view (equal to vmcode's bounds without W^X).
func watchMaps(t testing.TB, stop <-chan struct{}, codeLo, codeHi, rwLo, rwHi uintptr, dual bool) *mapsWatch {
	w := &mapsWatch{}
	for {
		for _, l := range readMaps(t) {
			writable, exec := l.perms[1] == 'w', l.perms[2] == 'x'
			desc := fmt.Sprintf("%x-%x %s %s", l.start, l.end, l.perms, l.name)
			inCode := l.start < codeHi && codeLo < l.end
			inAlias := l.start < rwHi && rwLo < l.end
			// Under W^X nothing in the process may be writable and
			// executable (the code cache of a VMM without W^X may be, by
			// design, so without it only this VMM's lines are judged).
			if writable && exec && (dual || inCode) {
				w.wx = append(w.wx, desc)
			}
			if dual && inCode && writable {
				w.execWritable = append(w.execWritable, desc)
			}
			if dual && inAlias && exec {
				w.aliasExec = append(w.aliasExec, desc)
			}
			if inCode && l.perms[:3] == "r-x" {
				w.execRX++
			}
			if dual && inAlias && l.perms[:3] == "rw-" {
				w.aliasRW++
			}
		}
		w.scans++
		select {
		case <-stop:
			return w
		default:
		}
	}
}

// memfdLinks counts this process's open file descriptors on vmcode's
// shared object.
func memfdLinks(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err == nil && strings.HasPrefix(target, "/memfd:"+vmm.SharedName) {
			n++
		}
	}
	return n
}

// emitConst emits `long f(void) { return imm; }` into u at off.
func emitConst(u *vmcode.Unit, off uintptr, imm uint64) error {
	a := amd64.NewAssembler(u.Exec() + off)
	a.MovImm64(amd64.RAX, imm)
	a.Ret()
	return u.Write(off, a.Bytes())
}

// TestWXStress runs goroutines that emit, run and free thousands of code
// units (and call stubs between them) while another reads
// /proc/self/maps in a loop. With W^X on, no line of the process is ever
// writable and executable, vmcode is never writable, the writable view
// never executable; without W^X no line of vmcode is ever writable and
// executable either (code is written, then sealed). Before and after, aspacem agrees
// with the kernel; after Close neither view nor the shared object's file
// descriptor is left.
func TestWXStress(t *testing.T) {
	for _, wx := range []vmm.WXMode{vmm.WXOn, vmm.WXOff} {
		t.Run("wx="+wx.String(), func(t *testing.T) {
			d := stressDuration()
			if wx == vmm.WXOff {
				d /= 2
			}
			stressUnits(t, wx, d)
		})
	}
}

// minUnits is the fewest units a stress run must emit, run and free for
// its checks to mean something.
const minUnits = 1000

func stressUnits(t *testing.T, wx vmm.WXMode, d time.Duration) {
	fdsBefore := memfdLinks(t)
	v, err := vmm.New(vmm.Config{VMCodeSize: 256 << 20, NoVMHeap: true, WX: wx})
	if err != nil {
		t.Fatal(err)
	}
	dual := wx == vmm.WXOn
	if v.WX() != dual {
		t.Fatalf("W^X %v, want %v", v.WX(), dual)
	}
	codeLo, codeSize := v.VMCode()
	rwLo, _ := v.WritableView()
	if dual {
		if got := memfdLinks(t); got != fdsBefore+1 {
			t.Fatalf("%d file descriptors on the shared object after New, want %d", got, fdsBefore+1)
		}
		// The offset is constant: every address converts with it.
		for _, off := range []uintptr{0, 0x1000, codeSize - 1} {
			rw, ok := v.Writable(codeLo + off)
			if !ok || rw != rwLo+off {
				t.Fatalf("Writable(%#x) = %#x %v, want %#x", codeLo+off, rw, ok, rwLo+off)
			}
			if x, ok := v.Executable(rw); !ok || x != codeLo+off {
				t.Fatalf("Executable(%#x) = %#x %v", rw, x, ok)
			}
		}
	}
	vmmtest.SyncCheck(t, v, "after New")

	c := vmcode.New(v)
	stop := make(chan struct{})
	watched := make(chan *mapsWatch)
	go func() { watched <- watchMaps(t, stop, codeLo, codeLo+codeSize, rwLo, rwLo+codeSize, dual) }()

	const workers = 4
	var units, stubs atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	deadline := time.Now().Add(d)
	hardDeadline := deadline.Add(60 * time.Second)
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			var live []*vmcode.Unit
			var fns []uintptr // the function in each live unit
			var want []uint64 // and what it returns
			defer func() {
				for _, u := range live {
					if err := u.Free(); err != nil {
						errs <- err
						return
					}
				}
			}()
			// The run lasts d and at least until it has done enough to
			// prove something (minUnits), which a loaded machine may
			// need longer for; hardDeadline bounds it either way.
			for time.Now().Before(deadline) || units.Load() < minUnits && time.Now().Before(hardDeadline) {
				u, err := c.Alloc(uintptr(1+rng.IntN(3)) << 12)
				if err != nil {
					errs <- fmt.Errorf("worker %d: %w", g, err)
					return
				}
				imm := rng.Uint64()
				// Code at a random spot, so that bytes of every page of the
				// unit go through the writable view.
				off := uintptr(rng.IntN(int(u.Size()-16))) &^ 15
				if err := emitConst(u, off, imm); err != nil {
					errs <- err
					return
				}
				if err := u.Seal(); err != nil {
					errs <- err
					return
				}
				if got := jit.Call(u.Exec() + off); uint64(got) != imm {
					errs <- fmt.Errorf("worker %d: unit %#x+%#x returned %#x, want %#x", g, u.Exec(), off, got, imm)
					return
				}
				units.Add(1)
				live = append(live, u)
				fns = append(fns, u.Exec()+off)
				want = append(want, imm)
				if rng.IntN(8) == 0 {
					// A stub with a rel32 call into a live unit: encoded
					// for its executable address, written at its writable
					// one.
					i := rng.IntN(len(live))
					stub, err := jit.EmitCallStub(c, fns[i])
					if err != nil {
						errs <- err
						return
					}
					if got := jit.Call(stub.Addr); uint64(got) != want[i] {
						errs <- fmt.Errorf("worker %d: stub %#x to %#x returned %#x, want %#x", g, stub.Addr, fns[i], got, want[i])
						return
					}
					if err := stub.Free(); err != nil {
						errs <- err
						return
					}
					stubs.Add(1)
				}
				if len(live) > 64 {
					i := rng.IntN(len(live))
					if err := live[i].Free(); err != nil {
						errs <- err
						return
					}
					live = append(live[:i], live[i+1:]...)
					fns = append(fns[:i], fns[i+1:]...)
					want = append(want[:i], want[i+1:]...)
				}
			}
		}(g)
	}
	wg.Wait()
	close(stop)
	w := <-watched
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d units and %d call stubs emitted, run and freed by %d goroutines in %v; /proc/self/maps read %d times, %d r-x lines in vmcode, %d rw- lines in the writable view",
		units.Load(), stubs.Load(), workers, d, w.scans, w.execRX, w.aliasRW)
	report := func(what string, lines []string) {
		for i, l := range lines {
			if i == 5 {
				t.Errorf("... %d lines in all", len(lines))
				break
			}
			t.Errorf("%s: %s", what, l)
		}
	}
	report("writable and executable", w.wx)
	report("vmcode writable under W^X", w.execWritable)
	report("writable view executable", w.aliasExec)
	if w.scans < 10 || w.execRX == 0 || (dual && w.aliasRW == 0) || units.Load() < minUnits {
		t.Errorf("the run proves little: %d scans, %d r-x lines in vmcode, %d rw- lines in the writable view, %d units",
			w.scans, w.execRX, w.aliasRW, units.Load())
	}
	if v.FreeVMCode() != codeSize {
		t.Errorf("vmcode has %#x bytes free after every unit was freed, want %#x", v.FreeVMCode(), codeSize)
	}
	vmmtest.SyncCheck(t, v, "after the run")
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	for _, l := range readMaps(t) {
		if (l.start < codeLo+codeSize && codeLo < l.end) || (l.start < rwLo+codeSize && rwLo < l.end) ||
			strings.Contains(l.name, vmm.SharedName) {
			t.Errorf("after Close the kernel still maps %x-%x %s %s", l.start, l.end, l.perms, l.name)
		}
	}
	if got := memfdLinks(t); got != fdsBefore {
		t.Errorf("%d file descriptors on the shared object after Close, want %d", got, fdsBefore)
	}
	if owned := v.Space().Owned(); len(owned) != 0 {
		t.Errorf("aspacem still owns %v after Close", owned)
	}
}

// units10k is the number of code units BenchmarkUnits writes and runs per
// iteration.
const units10k = 10000

// BenchmarkUnits writes and runs 10,000 small code units with W^X on and
// off: per unit, allocate it, encode `mov rax, imm64; ret` for its
// executable address, write it (through the writable view), seal it, call
// it through jit.Call and check the result; then free all 10,000 (under
// W^X, punching their pages out of the shared object). ns/unit is the
// figure to compare; the target is W^X under 10% slower.
func BenchmarkUnits(b *testing.B) { benchUnits(b, false) }

// BenchmarkUnitChurn is BenchmarkUnits with each unit freed as soon as it
// has run, so that the allocator hands the same pages out again: the
// pattern of a cache that evicts as fast as it fills.
func BenchmarkUnitChurn(b *testing.B) { benchUnits(b, true) }

// benchUnits runs 10,000 units per iteration with W^X on and off: all
// allocated, then all freed; or, with churn, each freed as soon as it ran.
func benchUnits(b *testing.B, churn bool) {
	for _, wx := range []vmm.WXMode{vmm.WXOn, vmm.WXOff} {
		b.Run("wx="+wx.String(), func(b *testing.B) {
			v, err := vmm.New(vmm.Config{VMCodeSize: 64 << 20, NoVMHeap: true, WX: wx})
			if err != nil {
				b.Fatal(err)
			}
			defer v.Close()
			c := vmcode.New(v)
			units := make([]*vmcode.Unit, 0, units10k)
			free := func(u *vmcode.Unit) {
				if err := u.Free(); err != nil {
					b.Fatal(err)
				}
			}
			cpu0 := cpuTime(b)
			for b.Loop() {
				for i := range units10k {
					u := runUnit(b, c, i)
					if churn {
						free(u)
					} else {
						units = append(units, u)
					}
				}
				for _, u := range units {
					free(u)
				}
				units = units[:0]
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*units10k), "ns/unit")
			// Process CPU time (user and system, all threads) is far less
			// sensitive than wall time to other load on the machine.
			b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N*units10k), "cpu-ns/unit")
		})
	}
}

// runUnit allocates a unit, writes `mov rax, i; ret` into it, seals it,
// calls it and checks that it returned i.
func runUnit(b *testing.B, c *vmcode.Code, i int) *vmcode.Unit {
	u, err := c.Alloc(16)
	if err != nil {
		b.Fatal(err)
	}
	if err := emitConst(u, 0, uint64(i)); err != nil {
		b.Fatal(err)
	}
	if err := u.Seal(); err != nil {
		b.Fatal(err)
	}
	if got := jit.Call(u.Exec()); got != uintptr(i) {
		b.Fatalf("unit %d returned %d", i, got)
	}
	return u
}

// cpuTime returns the process's user plus system CPU time in nanoseconds.
func cpuTime(tb testing.TB) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

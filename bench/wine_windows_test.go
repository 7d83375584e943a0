//go:build windows

package bench

// The harness's own Windows environment, on the real backend (Windows, or
// Wine in CI: scripts/wine/test.sh): what Go loads under Wine must leave A
// its preferred range, and F run after B in one process, as the matrix
// runs them, must not fail. The strategies' own properties on the real
// backend are tested with them, in bench/strategy.

import (
	"crypto/rand"
	"fmt"
	"testing"

	"golang.org/x/sys/windows"

	"github.com/reachvm/reachvm/bench/strategy"
	"github.com/reachvm/reachvm/internal/osmem"
)

// Under Wine, nothing a Go process loads by itself may lie in A's
// preferred range, [strategy.DefaultPref, +2 GiB), or A finds its range
// taken and relocates every library. Two things did: the ProcessPrng shim
// that scripts/wine/lib.sh installs as bcryptprimitives.dll (Go loads it
// at start-up), linked at mingw's default base 0x1_8000_0000; and
// advapi32 and sechost, which the shim imported and Wine's powrprof
// (which Go's runtime loads) imports, at Wine's fixed bases in that
// range. lib.sh now links the shim high with kernel32 its only import,
// and disables powrprof. A's region must then start at
// strategy.DefaultPref. On Windows system DLLs load high and the test
// only logs. The shim must still give random bytes.
func TestWindowsNothingInAsRange(t *testing.T) {
	// Flag 2: GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT.
	var h windows.Handle
	if err := windows.GetModuleHandleEx(2, windows.StringToUTF16Ptr("bcryptprimitives.dll"), &h); err != nil {
		t.Fatalf("bcryptprimitives.dll not loaded: %v", err)
	}
	at := uintptr(h)
	t.Logf("bcryptprimitives.dll at %#x (under Wine: %v)", at, osmem.UnderWine())
	if osmem.UnderWine() && at >= strategy.DefaultPref && at < strategy.DefaultPref+strategy.DefaultRegion {
		t.Errorf("the ProcessPrng shim is at %#x, inside A's preferred range [%#x, +%#x): rebuild it with scripts/wine/lib.sh", at, uintptr(strategy.DefaultPref), strategy.DefaultRegion)
	}
	var b1, b2 [32]byte
	if _, err := rand.Read(b1[:]); err != nil {
		t.Fatal(err)
	}
	if _, err := rand.Read(b2[:]); err != nil {
		t.Fatal(err)
	}
	if b1 == b2 || b1 == [32]byte{} {
		t.Errorf("ProcessPrng: %x then %x", b1, b2)
	}
	o := osmem.Native()
	st := &strategy.A{}
	if err := st.Setup(o); err != nil {
		t.Fatalf("A: setup: %v", err)
	}
	region := st.Region()
	lo, hi := region.Start, region.End
	if lo != strategy.DefaultPref {
		var taken []string
		rs, _ := o.Regions(strategy.DefaultPref, strategy.DefaultPref+strategy.DefaultRegion)
		for _, r := range rs {
			if r.AllocBase == r.Start || len(taken) == 0 {
				taken = append(taken, fmt.Sprintf("%#x %s", r.Start, r.Name))
			}
		}
		msg := fmt.Sprintf("A: region [%#x, %#x), not at %#x; taken there: %v", lo, hi, uintptr(strategy.DefaultPref), taken)
		if osmem.UnderWine() {
			t.Error(msg)
		} else {
			t.Log(msg)
		}
	}
	if err := st.Teardown(); err != nil {
		t.Fatal(err)
	}
}

// F after B in one process, on the unaltered backend (no lowOS, which
// bench/strategy's Windows tests use): under Wine 8.0, B's run leaves Wine
// placing F's region high, beside host mappings VirtualQuery calls free
// but that no map can take. F's near search must give such a hole up
// after one failed map and place in the next (bench/strategy's
// TestNearSkipsHiddenHoles models it on the sim); it used to retry the
// same hole and fail every trial. Last in the file: it changes where Wine
// places later reservations.
func TestWindowsFAfterB(t *testing.T) {
	rows, err := Run(Config{Backend: backendName(), Trials: 3, Seed: 1, Strategies: []string{"B", "F"}, Workloads: []string{"dr"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		t.Logf("%s/%s: %d of %d trials failed, %d/%d placed at init, %d/%d after, races %d/%d, worst reach %#x",
			r.Strategy, r.Workload, r.FailedTrials, r.Trials, r.InitPlaced, r.InitTried, r.PostPlaced, r.PostTried, r.RaceWindows, r.RaceLosses, r.WorstReach)
		if r.Strategy == "F" && (r.FailedTrials != 0 || r.SetupFailed != 0) {
			t.Errorf("F after B: %d of %d trials failed (%d in set-up)", r.FailedTrials, r.Trials, r.SetupFailed)
		}
	}
}

// backendName is the matrix's name for this backend.
func backendName() string {
	if osmem.UnderWine() {
		return "wine"
	}
	return "windows"
}

//go:build linux && amd64

package jit

import (
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reachvm/reachvm/vmm"
)

// TestRatios prints, per kernel, translated/native time measured
// interleaved (native on the same stack through the same context switch,
// RunNative), the minimum of REACHVM_RATIOS rounds each: the minimum is
// the estimator least disturbed by other load on a shared machine. It
// runs only when REACHVM_RATIOS is set; the Go benchmarks are the
// reported figures.
func TestRatios(t *testing.T) {
	rounds, _ := strconv.Atoi(os.Getenv("REACHVM_RATIOS"))
	if rounds == 0 {
		t.Skip("set REACHVM_RATIOS=rounds")
	}
	var opts Options
	opts.InlineCache, _ = strconv.Atoi(os.Getenv("REACHVM_IC"))
	// REACHVM_PERFMAP names fragments for perf report.
	opts.PerfMap = os.Getenv("REACHVM_PERFMAP") != ""
	var cfg vmm.Config
	if os.Getenv("REACHVM_LOW") != "" {
		cfg.VMCodeBase = lowBase
	}
	m, _ := newTestMachine(t, cfg, &opts)
	lib := loadKernels(t, m.v)
	logSum, n, worst, worstName := 0.0, 0, 0.0, ""
	only := os.Getenv("REACHVM_KERNELS")
	for _, k := range kernels {
		if k.need != nil && !k.need() || only != "" && !strings.Contains(only, k.name) {
			continue
		}
		fn := lookup(t, lib, k.name)
		want, _ := m.RunNative(fn, k.bench...)
		if got, err := m.Run(fn, k.bench...); err != nil || got != want {
			t.Fatalf("%s: %#x %v, native %#x", k.name, got, err, want)
		}
		var nat, tr []time.Duration
		for range rounds {
			t0 := time.Now()
			m.RunNative(fn, k.bench...)
			t1 := time.Now()
			m.Run(fn, k.bench...)
			t2 := time.Now()
			nat = append(nat, t1.Sub(t0))
			tr = append(tr, t2.Sub(t1))
		}
		sort.Slice(nat, func(i, j int) bool { return nat[i] < nat[j] })
		sort.Slice(tr, func(i, j int) bool { return tr[i] < tr[j] })
		r := float64(tr[0]) / float64(nat[0])
		t.Logf("%-12s native %10v translated %10v ratio %.3f (medians %v %v)", k.name, nat[0], tr[0], r, nat[len(nat)/2], tr[len(tr)/2])
		if k.micro {
			continue
		}
		logSum += math.Log(r)
		n++
		if r > worst {
			worst, worstName = r, k.name
		}
	}
	dumpCache(t, m)
	t.Logf("suite geomean %.3f, worst %.3f (%s); %+v", math.Exp(logSum/float64(n)), worst, worstName, m.Stats())
}

package bench

import (
	"encoding/xml"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/cpu"

	"github.com/reachvm/reachvm/jit/kernels"
)

// sampleKernels is a result as RunKernels makes it, with round numbers.
func sampleKernels() *KernelResult {
	r := &KernelResult{
		Program: "kernels-exec", Runs: 3, Tools: []string{"native", "reachvm", "valgrind"},
		Kernels: []KernelRow{
			{Kernel: "k_fib", N: 30, Repeat: 100, Seconds: map[string]float64{"native": 0.5, "reachvm": 0.6, "valgrind": 4}},
			{Kernel: "k_sort", N: 200, Repeat: 10, Seconds: map[string]float64{"native": 0.4, "reachvm": 0.8, "valgrind": 2}},
			{Kernel: "k_dcalls", Micro: true, N: 4000000, Repeat: 12, Seconds: map[string]float64{"native": 0.2, "reachvm": 0.1, "valgrind": 1}},
		},
	}
	for i := range r.Kernels {
		k := &r.Kernels[i]
		k.Ratio = map[string]float64{}
		for _, t := range r.Tools {
			k.Ratio[t] = k.Seconds[t] / k.Seconds["native"]
		}
	}
	r.summarize()
	return r
}

// The table: seconds and ratios per kernel and tool, the geomean and the
// worst kernel over the kernels that are not micro-benchmarks.
func ExampleKernelResult_WriteTable() {
	_ = sampleKernels().WriteTable(os.Stdout)
	// Output:
	// kernels-exec, median of 3 runs, seconds (ratio to native)
	// kernel                   native            reachvm           valgrind
	// k_fib            0.500 ( 1.00x)     0.600 ( 1.20x)     4.000 ( 8.00x)
	// k_sort           0.400 ( 1.00x)     0.800 ( 2.00x)     2.000 ( 5.00x)
	// k_dcalls*        0.200 ( 1.00x)     0.100 ( 0.50x)     1.000 ( 5.00x)
	// geomean                  1.00x              1.55x              6.32x
	// worst                     k_fib             k_sort              k_fib
	// * micro-benchmark of call and return cost, outside the means
}

// TestKernelPlot parses the chart: one bar per kernel and tool, titled
// with both and the ratio, rising above native's 1x for a slower tool and
// falling below it for a faster one; native's bars are the 1-pixel base.
func TestKernelPlot(t *testing.T) {
	svg := sampleKernels().Plot().SVG()
	var doc struct {
		Groups []struct {
			Rects []struct {
				Y      float64 `xml:"y,attr"`
				Height float64 `xml:"height,attr"`
				Title  string  `xml:"title"`
			} `xml:"rect"`
		} `xml:"g"`
		Texts []string `xml:"text"`
	}
	if err := xml.Unmarshal(svg, &doc); err != nil {
		t.Fatalf("not XML: %v\n%s", err, svg)
	}
	bars := map[string][2]float64{} // title: top, bottom
	for _, g := range doc.Groups {
		for _, r := range g.Rects {
			if r.Title != "" {
				bars[r.Title] = [2]float64{r.Y, r.Y + r.Height}
			}
		}
	}
	if len(bars) != 9 {
		t.Fatalf("%d bars, want 3 kernels x 3 tools: %v", len(bars), bars)
	}
	native := bars["k_fib native: 1x"]
	if native[1]-native[0] != 1 {
		t.Errorf("native's bar %v: want the 1-pixel base", native)
	}
	base := (native[0] + native[1]) / 2
	slow, fast := bars["k_sort valgrind: 5x"], bars["k_dcalls* reachvm: 0.5x"]
	// Coordinates are printed to a tenth of a pixel.
	near := func(a, b float64) bool { return math.Abs(a-b) < 0.15 }
	if !near(slow[1], base) || slow[0] >= base {
		t.Errorf("valgrind's 5x bar %v does not rise from the base %v", slow, base)
	}
	if !near(fast[0], base) || fast[1] <= base {
		t.Errorf("reachvm's 0.5x bar %v does not fall from the base %v", fast, base)
	}
	// On a log axis 8x rises three times as far as 2x.
	eight, two := bars["k_fib valgrind: 8x"], bars["k_sort reachvm: 2x"]
	if d8, d2 := base-eight[0], base-two[0]; d8 < 2.9*d2 || d8 > 3.1*d2 {
		t.Errorf("8x rises %v, 2x %v: not a log axis", d8, d2)
	}
	for _, want := range []string{"k_fib", "k_sort", "k_dcalls*", "native", "reachvm", "valgrind", "1x", "10x"} {
		if !slices.Contains(doc.Texts, want) {
			t.Errorf("no label %q among %q", want, doc.Texts)
		}
	}
}

func TestSelectKernels(t *testing.T) {
	ks, err := SelectKernels([]string{"k_sort", "k_fib"})
	if err != nil || len(ks) != 2 || ks[0].Name != "k_fib" || ks[1].Name != "k_sort" {
		t.Errorf("k_sort,k_fib: %v, %v; want both in report order", ks, err)
	}
	if _, err := SelectKernels([]string{"k_fib", "nosuch"}); err == nil || !strings.Contains(err.Error(), `unknown kernel "nosuch" (want k_fib, k_loops,`) {
		t.Errorf("nosuch: %v", err)
	}
	all, err := SelectKernels(nil)
	want := len(kernels.All)
	if !cpu.X86.HasAVX2 {
		want--
	}
	if err != nil || len(all) != want {
		t.Errorf("all: %d kernels, %v; want %d", len(all), err, want)
	}
	_, err = SelectKernels([]string{"k_avx2"})
	if cpu.X86.HasAVX2 != (err == nil) {
		t.Errorf("k_avx2 with AVX2 %v: %v", cpu.X86.HasAVX2, err)
	}
}

func TestAptGetCommands(t *testing.T) {
	if c := AptGetCommands(nil); c != nil {
		t.Errorf("nothing missing: %q", c)
	}
	c := AptGetCommands(append(ExternalTools, ExternalTools[0]))
	want := [][]string{
		{"apt-get", "-o", "DPkg::Lock::Timeout=300", "update", "-q"},
		{"apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "-q", "--no-install-recommends", "valgrind", "qemu-user"},
	}
	if len(c) != 2 || !slices.Equal(c[0], want[0]) || !slices.Equal(c[1], want[1]) {
		t.Errorf("%q, want %q", c, want)
	}
}

// TestKernelTools finds tools on PATH: a directory holding only a
// "valgrind" has valgrind, and qemu is missing.
func TestKernelTools(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the tools are Linux programs")
	}
	dir := t.TempDir()
	fake := filepath.Join(dir, "valgrind")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	tools, missing := KernelTools(nil, "/path/to/reachvm")
	var names []string
	for _, tl := range tools {
		names = append(names, tl.Name)
	}
	if !slices.Equal(names, []string{"native", "reachvm", "valgrind"}) || len(tools[0].Argv) != 0 ||
		!slices.Equal(tools[1].Argv, []string{"/path/to/reachvm", "run"}) || !slices.Equal(tools[2].Argv, []string{fake, "--tool=none", "-q"}) {
		t.Errorf("tools %+v", tools)
	}
	if len(missing) != 1 || missing[0].Bin != "qemu-x86_64" || missing[0].Package != "qemu-user" {
		t.Errorf("missing %+v, want qemu", missing)
	}
	tools, missing = KernelTools([]string{"native"}, "x")
	if len(tools) != 1 || tools[0].Name != "native" || len(missing) != 0 {
		t.Errorf("native alone: %+v, missing %+v", tools, missing)
	}
}

// TestRunKernels times a real kernel natively and under env(1), a tool
// that changes nothing, and fails a tool whose output differs from
// native's.
func TestRunKernels(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("the kernels are linux/amd64 programs")
	}
	prog, err := kernels.Program("kernels", kernels.Exec)
	if err != nil {
		t.Skip(err) // no gcc
	}
	env, err := exec.LookPath("env")
	if err != nil {
		t.Fatal(err)
	}
	ks, _ := SelectKernels([]string{"k_fib"})
	cfg := KernelConfig{Program: prog, Kernels: ks, Runs: 1, Seconds: 0.01,
		Tools: []KernelTool{{Name: "native"}, {Name: "env", Argv: []string{env}}}}
	res, err := RunKernels(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Kernels) != 1 {
		t.Fatalf("%d rows", len(res.Kernels))
	}
	k := res.Kernels[0]
	if k.Kernel != "k_fib" || k.N != 30 || k.Repeat < 1 || k.Ratio["native"] != 1 || k.Seconds["native"] <= 0 || k.Seconds["env"] <= 0 ||
		k.Ratio["env"] != k.Seconds["env"]/k.Seconds["native"] || res.Worst["env"] != "k_fib" || math.Abs(res.Geomean["env"]-k.Ratio["env"]) > 1e-12*k.Ratio["env"] {
		t.Errorf("result %+v", res)
	}
	cfg.Tools = append(cfg.Tools, KernelTool{Name: "liar", Argv: []string{"sh", "-c", "echo " + strconv.Quote("wrong")}})
	if _, err := RunKernels(cfg); err == nil || !strings.Contains(err.Error(), `k_fib: liar printed "wrong\n", native`) {
		t.Errorf("a tool printing something else: %v", err)
	}
	cfg.Tools = cfg.Tools[1:]
	if _, err := RunKernels(cfg); err == nil || !strings.Contains(err.Error(), "the first tool must be native") {
		t.Errorf("no native baseline: %v", err)
	}
}

// TestWithClients puts each sample client's tool after reachvm's, or
// after native's without reachvm, as `reachvm run -c NAME` with its
// report discarded, and NAME:ARG's with the argument ARG (memtrace's
// default writing its trace to the null device, with no scratch
// directory).
func TestWithClients(t *testing.T) {
	native, rv := KernelTool{Name: "native"}, KernelTool{Name: "reachvm", Argv: []string{"/rv", "run"}}
	qemu := KernelTool{Name: "qemu", Argv: []string{"/usr/bin/qemu-x86_64"}}
	ins := KernelTool{Name: "reachvm+inscount", Argv: []string{"/rv", "run", "-c", "inscount", "-o", os.DevNull, "--"}}
	bb := KernelTool{Name: "reachvm+bbcount", Argv: []string{"/rv", "run", "-c", "bbcount", "-o", os.DevNull, "--"}}
	mt := KernelTool{Name: "reachvm+memtrace", Argv: []string{"/rv", "run", "-c", "memtrace", "-o", os.DevNull, "file=" + os.DevNull, "--"}}
	drop := KernelTool{Name: "reachvm+memtrace:drop", Argv: []string{"/rv", "run", "-c", "memtrace", "-o", os.DevNull, "drop", "--"}}
	for _, tc := range []struct {
		tools   []KernelTool
		clients []string
		want    []KernelTool
	}{
		{[]KernelTool{native, rv, qemu}, []string{"inscount", "bbcount"}, []KernelTool{native, rv, ins, bb, qemu}},
		{[]KernelTool{native, qemu}, []string{"bbcount"}, []KernelTool{native, bb, qemu}},
		{[]KernelTool{native, rv}, nil, []KernelTool{native, rv}},
		{[]KernelTool{native}, []string{"inscount"}, []KernelTool{native, ins}},
		{[]KernelTool{native, rv}, []string{"memtrace", "memtrace:drop"}, []KernelTool{native, rv, mt, drop}},
	} {
		in := slices.Clone(tc.tools)
		got, err := WithClients(in, "/rv", tc.clients, "")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.EqualFunc(got, tc.want, func(a, b KernelTool) bool { return a.Name == b.Name && slices.Equal(a.Argv, b.Argv) }) {
			t.Errorf("WithClients(%v, %q) = %v, want %v", tc.tools, tc.clients, got, tc.want)
		}
		if !slices.EqualFunc(in, tc.tools, func(a, b KernelTool) bool { return a.Name == b.Name }) {
			t.Errorf("WithClients changed its argument: %v", in)
		}
	}
}

package bench

import (
	"bytes"
	"encoding/csv"
	"encoding/xml"
	"errors"
	"io"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/reachvm/reachvm/bench/strategy"
	"github.com/reachvm/reachvm/mem"
)

var sweepSizes = []uintptr{64 << 10, 1 << 20, 64 << 20, 512 << 20, 1 << 30, 1536 << 20, 2 << 30, 3 << 30}

// The size sweep without races or a workload: success only falls as the
// size grows; F places nothing beyond the reachable space outside its
// 512 MiB region; linux-fixed places everything up to its region's size
// and nothing larger; A places nothing after init.
func TestSizeSweepLimits(t *testing.T) {
	pts, err := SizeSweep(SweepConfig{
		Config:   Config{Trials: 2, Seed: 3, Strategies: []string{"A", "F", "linux-fixed", "linux-near"}},
		Workload: "none", Sizes: sweepSizes,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 4*len(sweepSizes) {
		t.Fatalf("%d points", len(pts))
	}
	for i, p := range pts {
		if p.Trials != 2 || p.SetupFailed != 0 {
			t.Errorf("%+v", p)
		}
		if i > 0 && pts[i-1].Strategy == p.Strategy {
			if q := pts[i-1]; p.InitPlaced > q.InitPlaced || p.PostPlaced > q.PostPlaced {
				t.Errorf("%s: success rises from %d to %d bytes: %+v then %+v", p.Strategy, q.Size, p.Size, q, p)
			}
		}
		all := func(n int) bool { return n == p.Trials }
		switch p.Strategy {
		case "A":
			if p.PostPlaced != 0 {
				t.Errorf("A placed after init: %+v", p)
			}
		case "F":
			// Outside a 512 MiB region, at most 2 GiB - 512 MiB lies within
			// reach of all of it, on either side: a view's last byte at
			// most mem.Rel32Max from the region's first.
			if p.Size > mem.Rel32Max+1-strategy.DefaultFRegion && (p.InitPlaced != 0 || p.PostPlaced != 0) {
				t.Errorf("F placed beyond its window: %+v", p)
			}
			if p.Size <= 64<<20 && (!all(p.InitPlaced) || !all(p.PostPlaced)) {
				t.Errorf("F failed a small library: %+v", p)
			}
		case "linux-fixed":
			fits := p.Size <= strategy.DefaultRegion
			if fits != all(p.InitPlaced) || fits != all(p.PostPlaced) || (!fits && (p.InitPlaced != 0 || p.PostPlaced != 0)) {
				t.Errorf("linux-fixed, region %d bytes: %+v", strategy.DefaultRegion, p)
			}
		}
	}
	// The summary reads the same limits off the curves.
	for _, l := range SizeLimits(pts) {
		switch l.Strategy {
		case "linux-fixed":
			if l.InitAll != strategy.DefaultRegion || l.PostAll != strategy.DefaultRegion || l.InitAny != strategy.DefaultRegion {
				t.Errorf("%+v", l)
			}
		case "F":
			if l.PostAny == 0 || l.PostAny > mem.Rel32Max+1-strategy.DefaultFRegion {
				t.Errorf("%+v", l)
			}
		case "A":
			if l.PostAny != 0 || l.InitAll < 1<<30 {
				t.Errorf("%+v", l)
			}
		}
	}
}

// Set-up cost against region size: the grid pays a reservation per slot,
// E a fixed 64 MiB grid whatever the region, linux-fixed one call.
func TestRegionSweepCost(t *testing.T) {
	pts, err := RegionSweep(SweepConfig{
		Config:  Config{Trials: 1, Seed: 2, Strategies: []string{"D", "E", "linux-fixed", "linux-near"}},
		Regions: []uintptr{256 << 20, 1 << 30, 2 << 30},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 3*3 {
		t.Fatalf("%d points (linux-near has no region): %+v", len(pts), pts)
	}
	by := map[string]map[uint64]RegionPoint{}
	for _, p := range pts {
		if by[p.Strategy] == nil {
			by[p.Strategy] = map[uint64]RegionPoint{}
		}
		by[p.Strategy][p.Region] = p
		if p.SetupFailed != 0 || p.SetupTime != 0 {
			t.Errorf("%+v", p)
		}
	}
	for _, r := range []uint64{256 << 20, 1 << 30, 2 << 30} {
		slots := int(r / strategy.DefaultSlot)
		if d := by["D"][r]; d.Objects != slots || d.SetupCalls < float64(slots) || d.TeardownCalls < float64(slots) {
			t.Errorf("D at %d: %+v, want %d slots", r, d, slots)
		}
		if e := by["E"][r]; e.SetupCalls != by["E"][256<<20].SetupCalls || e.SetupCalls > 110 {
			t.Errorf("E at %d: %+v", r, e)
		}
		if l := by["linux-fixed"][r]; l.SetupCalls != 1 || l.TeardownCalls != 1 || l.Objects != 1 {
			t.Errorf("linux-fixed at %d: %+v", r, l)
		}
	}
}

// sweepFiles runs small sweeps and renders every file they produce.
func sweepFiles(t *testing.T) map[string][]byte {
	t.Helper()
	cfg := SweepConfig{
		Config: Config{Trials: 2, Seed: 11, Strategies: []string{"C", "D", "F", "linux-munmap", "vmm-linear"}},
		Sizes:  []uintptr{64 << 10, 8 << 20, 256 << 20, 3 << 30}, Regions: []uintptr{256 << 20, 1 << 30},
		Races: []int{0, 20},
	}
	sizes, err := SizeSweep(cfg)
	if err != nil {
		t.Fatal(err)
	}
	regions, err := RegionSweep(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := Run(Config{Trials: 1, Seed: 11, Strategies: []string{"C", "linux-fixed"}, Workloads: []string{"dr"}})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	var b bytes.Buffer
	must := func(name string, err error) {
		if err != nil {
			t.Fatal(name, err)
		}
		out[name] = slices.Clone(b.Bytes())
		b.Reset()
	}
	must("strategies.csv", WriteCSV(&b, rows))
	must("sizes.csv", WriteSizeCSV(&b, sizes))
	must("regions.csv", WriteRegionCSV(&b, regions))
	must("tables.md", WriteMarkdown(&b, rows, sizes, regions))
	for _, f := range append(SizePlots(sizes, 11), RegionPlots(regions, 11)...) {
		out[f.Name] = f.Data
	}
	return out
}

// The same seed gives byte-identical CSV, Markdown and SVG, whether the
// sim's cells run on one worker or several, and at any race rate.
func TestSweepDeterministic(t *testing.T) {
	a := sweepFiles(t)
	old := runtime.GOMAXPROCS(1)
	b := sweepFiles(t)
	runtime.GOMAXPROCS(max(old, 2))
	c := sweepFiles(t)
	runtime.GOMAXPROCS(old)
	for _, other := range []map[string][]byte{b, c} {
		if len(a) != len(other) {
			t.Fatalf("%d files, then %d", len(a), len(other))
		}
		for name, data := range a {
			if !bytes.Equal(data, other[name]) {
				t.Errorf("%s differs between runs", name)
			}
		}
	}
	for _, want := range []string{"place-init-windows.svg", "place-post-linux.svg", "place-post-windows-race20.svg", "setup-calls.svg"} {
		if a[want] == nil {
			t.Errorf("no %s among %d files", want, len(a))
		}
	}
	if _, ok := a["setup-time.svg"]; ok {
		t.Error("sim drew wall times")
	}
}

// Every CSV parses with its header and one record per point; every SVG is
// well-formed XML with an svg root, a line and a legend entry per
// strategy.
func TestSweepFilesParse(t *testing.T) {
	files := sweepFiles(t)
	for name, header := range map[string][]string{"strategies.csv": RowHeader, "sizes.csv": SizeHeader, "regions.csv": RegionHeader} {
		recs, err := csv.NewReader(bytes.NewReader(files[name])).ReadAll()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(recs) < 2 || !slices.Equal(recs[0], header) {
			t.Errorf("%s: header %q, want %q (%d records)", name, recs[0], header, len(recs))
		}
	}
	// 2 races x 5 strategies x 4 sizes; 4 strategies with a region x 2.
	if n := bytes.Count(files["sizes.csv"], []byte("\n")); n != 1+40 {
		t.Errorf("sizes.csv: %d lines", n)
	}
	if n := bytes.Count(files["regions.csv"], []byte("\n")); n != 1+10 {
		t.Errorf("regions.csv: %d lines", n)
	}
	for name, data := range files {
		if !strings.HasSuffix(name, ".svg") {
			continue
		}
		d := xml.NewDecoder(bytes.NewReader(data))
		var root string
		lines, texts := 0, ""
		for {
			tok, err := d.Token()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			switch e := tok.(type) {
			case xml.StartElement:
				if root == "" {
					root = e.Name.Local
				}
				if e.Name.Local == "polyline" {
					lines++
				}
			case xml.CharData:
				texts += string(e) + "\n"
			}
		}
		want := []string{"D", "C", "F"}
		if strings.Contains(name, "linux") {
			want = []string{"linux-munmap", "vmm-linear"}
		}
		if name == "setup-calls.svg" {
			want = []string{"C", "D", "F", "linux-munmap", "vmm-linear"}
		}
		if root != "svg" || lines != len(want) {
			t.Errorf("%s: root %q, %d lines, want svg and %d", name, root, lines, len(want))
		}
		for _, s := range want {
			if !strings.Contains(texts, "\n"+s+"\n") {
				t.Errorf("%s: no legend entry %q", name, s)
			}
		}
	}
}

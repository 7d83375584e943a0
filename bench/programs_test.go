package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// samplePrograms is a result as RunPrograms makes it, with round numbers:
// reachvm fails one program, qemu is not a runner, jq is not installed.
func samplePrograms() *ProgramResult {
	r := &ProgramResult{
		Runs: 1, Scale: 1, Runners: []string{"native", "reachvm", "valgrind"}, RSSMeasured: true,
		Startup: &ProgramRow{Program: "/bin/true", Command: "/usr/bin/true", Size: 10, Unit: "runs",
			Seconds:   map[string]float64{"native": 0.001, "reachvm": 0.004, "valgrind": 0.4},
			MaxRSSKiB: map[string]int64{"native": 1024, "reachvm": 12800, "valgrind": 36864}},
		Programs: []ProgramRow{
			{Program: "xz-9", Command: "xz -9 -c -T1 text-2097152.txt", Size: 2 << 20, Unit: "bytes",
				Seconds:   map[string]float64{"native": 2, "reachvm": 3, "valgrind": 8},
				MaxRSSKiB: map[string]int64{"native": 44544, "reachvm": 60000, "valgrind": 67200}},
			{Program: "sqlite3", Command: "sqlite3 :memory: < rows-20000.sql", Size: 20000, Unit: "rows",
				Seconds:   map[string]float64{"native": 0.25, "valgrind": 2.5},
				MaxRSSKiB: map[string]int64{"native": 7000, "valgrind": 37700},
				Errors:    map[string]string{"reachvm": "exit 126: reachvm run: jit: /usr/bin/sqlite3: a dynamic executable (PT_INTERP): only static ones run"}},
		},
		Missing: []string{"jq (jq: not installed: Debian package jq)"},
	}
	rows := append([]*ProgramRow{r.Startup}, &r.Programs[0], &r.Programs[1])
	for _, p := range rows {
		p.Ratio = map[string]float64{}
		for t, s := range p.Seconds {
			p.Ratio[t] = s / p.Seconds["native"]
		}
	}
	r.summarize()
	return r
}

// The table: seconds and ratios, an error cell numbered and explained
// below, each runner's geomean over the programs it ran, the start-up in
// milliseconds, the peak RSS, and what was not installed.
func ExampleProgramResult_WriteTable() {
	_ = samplePrograms().WriteTable(os.Stdout)
	// Output:
	// programs (default sizes), median of 1 run: wall seconds (ratio to native)
	// program                  native            reachvm           valgrind
	// xz-9             2.000 ( 1.00x)     3.000 ( 1.50x)     8.000 ( 4.00x)  xz -9 -c -T1 text-2097152.txt (2 MiB)
	// sqlite3          0.250 ( 1.00x)          error [1]     2.500 (10.00x)  sqlite3 :memory: < rows-20000.sql (20000 rows)
	// geomean              1.00x of 2         1.50x of 1         6.32x of 2
	//
	// start-up: /usr/bin/true, median of 10 runs: milliseconds (ratio to native)
	//                          native            reachvm           valgrind
	// /bin/true        1.000 ( 1.00x)     4.000 ( 4.00x)   400.000 (400.00x)
	//
	// peak RSS (wait4's ru_maxrss: the runner and the program), MiB
	// program                  native            reachvm           valgrind
	// /bin/true                   1.0               12.5               36.0
	// xz-9                       43.5               58.6               65.6
	// sqlite3                     6.8                  -               36.8
	//
	// errors:
	// [1] reachvm on sqlite3: exit 126: reachvm run: jit: /usr/bin/sqlite3: a dynamic executable (PT_INTERP): only static ones run
	//
	// not installed, left out:
	// jq (jq: not installed: Debian package jq)
}

// TestProgramResultJSON: what --json prints has every runner's numbers by
// name, the error of a runner that failed, and no number for it.
func TestProgramResultJSON(t *testing.T) {
	b, err := json.Marshal(samplePrograms())
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Runners  []string
		Startup  *struct{ Program string }
		Programs []struct {
			Program string
			Ratio   map[string]float64
			MaxRSS  map[string]int64 `json:"max_rss_kib"`
			Errors  map[string]string
		}
		Missing   []string
		Geomean   map[string]float64
		GeomeanOf map[string]int `json:"geomean_of"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	sq := got.Programs[1]
	if _, ok := sq.Ratio["reachvm"]; ok || sq.Errors["reachvm"] == "" || sq.MaxRSS["valgrind"] != 37700 || sq.Ratio["valgrind"] != 10 {
		t.Errorf("sqlite3 row %+v", sq)
	}
	if got.Startup == nil || got.Startup.Program != "/bin/true" || got.GeomeanOf["reachvm"] != 1 || got.Geomean["reachvm"] != 1.5 || len(got.Missing) != 1 {
		t.Errorf("result %s", b)
	}
}

// TestProgramPlot: a bar per program and runner that ran, none where the
// runner failed; the start-up is the first group.
func TestProgramPlot(t *testing.T) {
	svg := samplePrograms().Plot().SVG()
	var doc struct {
		Groups []struct {
			Rects []struct {
				Title string `xml:"title"`
			} `xml:"rect"`
		} `xml:"g"`
		Texts []string `xml:"text"`
	}
	if err := xml.Unmarshal(svg, &doc); err != nil {
		t.Fatalf("not XML: %v\n%s", err, svg)
	}
	var bars []string
	for _, g := range doc.Groups {
		for _, r := range g.Rects {
			if r.Title != "" {
				bars = append(bars, r.Title)
			}
		}
	}
	slices.Sort(bars)
	want := []string{"/bin/true native: 1x", "/bin/true reachvm: 4x", "/bin/true valgrind: 400x", "sqlite3 native: 1x", "sqlite3 valgrind: 10x",
		"xz-9 native: 1x", "xz-9 reachvm: 1.5x", "xz-9 valgrind: 4x"}
	if !slices.Equal(bars, want) {
		t.Errorf("bars %q, want %q", bars, want)
	}
	if i, j := slices.Index(doc.Texts, "/bin/true"), slices.Index(doc.Texts, "xz-9"); i < 0 || j < 0 || i > j {
		t.Errorf("labels %q: want /bin/true first", doc.Texts)
	}
}

func TestParseSpawnReport(t *testing.T) {
	rss, cpu, err := parseSpawnReport("1032 3231 769\n")
	if err != nil || rss != 1032 || cpu != 4*time.Millisecond {
		t.Errorf("good report: %d %v %v", rss, cpu, err)
	}
	for _, bad := range []string{"", "1 2\n", "1 2 3", "1 2 x\n", "1 -2 3\n", "1 2 3 4\n"} {
		if _, _, err := parseSpawnReport(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestSelectPrograms(t *testing.T) {
	ws, err := SelectPrograms([]string{"jq", "xz-9"})
	if err != nil || len(ws) != 2 || ws[0].Name != "xz-9" || ws[1].Name != "jq" {
		t.Errorf("jq,xz-9: %v, %v; want both in report order", ws, err)
	}
	if _, err := SelectPrograms([]string{"nosuch"}); err == nil || !strings.Contains(err.Error(), `unknown program "nosuch" (want xz-9, sha256sum,`) {
		t.Errorf("nosuch: %v", err)
	}
	for _, w := range ProgramWorkloads {
		if w.Size <= 0 || w.FullSize < w.Size || w.Input == nil || w.Package == "" {
			t.Errorf("%s: sizes %d and %d, package %q", w.Name, w.Size, w.FullSize, w.Package)
		}
	}
}

// TestInputs: the generated inputs have the size asked for, the same
// bytes every time, and the form their program reads.
func TestInputs(t *testing.T) {
	if runtime.GOOS != "linux" {
		// Under Wine a file the generator renamed into place cannot
		// be removed (DeleteFile: ERROR_INVALID_FUNCTION), and the
		// inputs are only ever made for Linux programs.
		t.Skip("the programs' inputs are made on Linux")
	}
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, p := range []string{a, b} {
		if err := writeText(p, 100003); err != nil {
			t.Fatal(err)
		}
	}
	ta, _ := os.ReadFile(a)
	tb, _ := os.ReadFile(b)
	if len(ta) != 100003 || !bytes.Equal(ta, tb) || bytes.Count(ta, []byte("\n")) < 1000 {
		t.Errorf("text: %d bytes, equal %v, %d lines", len(ta), bytes.Equal(ta, tb), bytes.Count(ta, []byte("\n")))
	}
	sql := filepath.Join(dir, "s.sql")
	if err := writeSQL(sql, 1234); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(sql)
	defer f.Close()
	inserts := 0
	for sc := bufio.NewScanner(f); sc.Scan(); {
		if strings.HasPrefix(sc.Text(), "INSERT INTO t VALUES(") {
			inserts++
		}
	}
	if inserts != 1234 {
		t.Errorf("%d INSERTs, want 1234", inserts)
	}
	js := filepath.Join(dir, "o.json")
	if err := writeJSON(js, 321); err != nil {
		t.Fatal(err)
	}
	jb, _ := os.ReadFile(js)
	var objs []struct {
		K    string
		V    int
		Tags []string
	}
	if err := json.Unmarshal(jb, &objs); err != nil || len(objs) != 321 || len(objs[5].Tags) != 2 {
		t.Errorf("JSON: %d objects, %v", len(objs), err)
	}
	args, stdin, err := sqlInput(dir, 10)
	if err != nil || !slices.Equal(args, []string{":memory:"}) || filepath.Base(stdin) != "rows-10.sql" {
		t.Errorf("sqlInput: %q %q %v", args, stdin, err)
	}
	if got := commandText("jq", []string{"-c", jqFilter, filepath.Join(dir, "objects-5.json")}, "", dir); got != "jq -c 'map(select(.v % 3 == 0))...' objects-5.json" {
		t.Errorf("commandText: %q", got)
	}
}

// TestFindELF: a script first on PATH (a version manager's shim) is
// passed over for /usr/bin's program; an ELF on PATH is found.
func TestFindELF(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the programs are Linux programs")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "true"), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "onlyscript"), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	if p, err := FindELF("true"); err != nil || p != "/usr/bin/true" {
		t.Errorf("true behind a script: %q, %v", p, err)
	}
	if _, err := FindELF("onlyscript"); err == nil || !strings.Contains(err.Error(), "is not an ELF executable") {
		t.Errorf("a script alone: %v", err)
	}
	if _, err := FindELF("nosuchprogram"); err == nil || !strings.Contains(err.Error(), "not installed") {
		t.Errorf("nothing: %v", err)
	}
	if p, err := FindELF("/bin/true"); err != nil || !filepath.IsAbs(p) {
		t.Errorf("/bin/true: %q, %v", p, err)
	}
}

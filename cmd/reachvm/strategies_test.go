package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reachvm/reachvm/bench"
	"github.com/reachvm/reachvm/bench/strategy"
)

// The smoke run: the whole sim matrix, small, well under 10 s.
func TestStrategiesSmoke(t *testing.T) {
	var out, errb bytes.Buffer
	t0 := time.Now()
	if code := run([]string{"strategies", "--trials", "2", "--seed", "5"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if d := time.Since(t0); d > 10*time.Second {
		t.Errorf("smoke run took %v", d)
	}
	for _, name := range strategy.Names() {
		if !strings.Contains(out.String(), "\n"+name+" ") {
			t.Errorf("table lacks %s:\n%s", name, out.String())
		}
	}
}

func TestStrategiesJSON(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"strategies", "--trials", "1", "--json", "--workload", "dr"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var m map[string][]bench.Row
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		t.Fatalf("%v:\n%s", err, out.String())
	}
	if len(m) != len(strategy.Names()) {
		t.Errorf("%d entries, want %d", len(m), len(strategy.Names()))
	}
	for _, name := range strategy.Names() {
		rows := m[name]
		if len(rows) != 1 || rows[0].Strategy != name || rows[0].Workload != "dr" || rows[0].Trials != 1 {
			t.Errorf("%s: %+v", name, rows)
		}
	}
}

func TestStrategiesLinuxBackend(t *testing.T) {
	var out, errb bytes.Buffer
	if runtime.GOOS != "linux" {
		// Off Linux (Windows, under Wine in CI) the backend is refused
		// with a failure, not a usage error, naming why.
		code := run([]string{"strategies", "--backend", "linux", "--trials", "1"}, &out, &errb)
		if code != 1 || !strings.Contains(errb.String(), "backend linux needs Linux") || out.Len() != 0 {
			t.Errorf("exit %d, stdout %q, stderr %q; want 1 and \"backend linux needs Linux\"", code, out.String(), errb.String())
		}
		return
	}
	if code := run([]string{"strategies", "--backend", "linux", "--trials", "1", "--json"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var m map[string][]bench.Row
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	if _, ok := m["A"]; ok || len(m["linux-fixed"]) == 0 {
		t.Errorf("linux backend ran %v", bench.Names(m))
	}
}

func TestStrategiesBadArguments(t *testing.T) {
	for _, args := range [][]string{
		{"strategies", "--backend", "nope"},
		{"strategies", "--trials", "0"},
		{"strategies", "--strategy", "Z"},
		{"strategies", "--workload", "nope"},
		{"strategies", "extra"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code == 0 {
			t.Errorf("%q exited 0", args)
		}
	}
}

// --out writes the matrix as JSON (the --json shape) and CSV, the sweeps
// as CSV, their plots and the Markdown tables; two runs with one seed
// write the same bytes.
func TestStrategiesOut(t *testing.T) {
	dirs := []string{tempDir(t), tempDir(t)}
	var stdout []byte
	for _, dir := range dirs {
		var out, errb bytes.Buffer
		args := []string{"strategies", "--trials", "1", "--seed", "3", "--strategy", "D,F,linux-fixed", "--workload", "dr",
			"--out", dir, "--sweep-trials", "1", "--sweep-race", "0,5", "--json"}
		if code := run(args, &out, &errb); code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		stdout = out.Bytes()
	}
	want := []string{"strategies.json", "strategies.csv", "sizes.csv", "regions.csv", "tables.md",
		"place-init-windows.svg", "place-post-windows.svg", "place-init-linux.svg", "place-post-linux.svg",
		"place-init-windows-race5.svg", "place-post-linux-race5.svg", "setup-calls.svg"}
	for _, name := range want {
		a, err := os.ReadFile(filepath.Join(dirs[0], name))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dirs[1], name))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs between two runs with one seed (%v)", name, err)
		}
	}
	js, _ := os.ReadFile(filepath.Join(dirs[0], "strategies.json"))
	if !bytes.Equal(js, stdout) {
		t.Errorf("strategies.json is not what --json prints")
	}
	var m map[string][]bench.Row
	if err := json.Unmarshal(js, &m); err != nil || len(m) != 3 || len(m["D"]) != 1 {
		t.Errorf("strategies.json: %v, %d entries", err, len(m))
	}
	f, _ := os.Open(filepath.Join(dirs[0], "sizes.csv"))
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil || len(recs) != 1+2*3*len(bench.DefaultLibSizes()) || !slices.Equal(recs[0], bench.SizeHeader) {
		t.Errorf("sizes.csv: %v, %d records, header %q", err, len(recs), recs[0])
	}
	md, _ := os.ReadFile(filepath.Join(dirs[0], "tables.md"))
	if !bytes.HasPrefix(md, []byte("backend sim, 1 trials, seed 3")) || !bytes.Contains(md, []byte("| linux-fixed | 0% | 1.5G |")) {
		t.Errorf("tables.md:\n%s", md)
	}
}

// The progress bar is for terminals: a buffer (or a file, or a pipe) gets
// none of it.
func TestStrategiesNoProgressOffTerminal(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"strategies", "--trials", "1", "--strategy", "linux-fixed", "--out", tempDir(t), "--sweep-trials", "1"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if strings.Contains(errb.String(), "\r") || strings.Contains(errb.String(), "[#") {
		t.Errorf("progress bar on a buffer: %q", errb.String())
	}
	if !strings.Contains(out.String(), "init: every trial") {
		t.Errorf("no size limits after the table:\n%s", out.String())
	}
}

func TestStrategiesBadSweepArguments(t *testing.T) {
	for _, args := range [][]string{
		{"strategies", "--out", tempDir(t), "--sweep-race", "101"},
		{"strategies", "--out", tempDir(t), "--sweep-race", "x"},
		{"strategies", "--out", tempDir(t), "--sweep-workload", "nope"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("%q exited %d, want 2", args, code)
		}
	}
}

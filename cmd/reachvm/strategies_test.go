package main

import (
	"bytes"
	"encoding/json"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/reachvm/reachvm/bench"
)

// The smoke run of issue 6: the whole sim matrix, small, well under 10 s.
func TestStrategiesSmoke(t *testing.T) {
	var out, errb bytes.Buffer
	t0 := time.Now()
	if code := run([]string{"strategies", "--trials", "2", "--seed", "5"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if d := time.Since(t0); d > 10*time.Second {
		t.Errorf("smoke run took %v", d)
	}
	for _, name := range bench.StrategyNames {
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
	if len(m) != len(bench.StrategyNames) {
		t.Errorf("%d entries, want %d", len(m), len(bench.StrategyNames))
	}
	for _, name := range bench.StrategyNames {
		rows := m[name]
		if len(rows) != 1 || rows[0].Strategy != name || rows[0].Workload != "dr" || rows[0].Trials != 1 {
			t.Errorf("%s: %+v", name, rows)
		}
	}
}

func TestStrategiesLinuxBackend(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the linux backend needs Linux")
	}
	var out, errb bytes.Buffer
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
		{"strategies", "--backend", "bogus"},
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

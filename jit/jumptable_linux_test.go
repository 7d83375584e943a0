//go:build linux && amd64

package jit

import (
	"regexp"
	"strconv"
	"testing"

	kern "github.com/reachvm/reachvm/jit/kernels"
	"github.com/reachvm/reachvm/vmm"
)

// TestJumpTablePrograms runs jumptab natively and under the translator
// with vmcode low, where its switch and its computed goto take translated
// tables, and high, where they take sites: the output is native's, the
// tables are counted low and not high, and the ET_EXEC's goto table,
// changed twice, deleted what was translated through it (a static PIE,
// which nothing relocates, runs only the switch).
func TestJumpTablePrograms(t *testing.T) {
	for _, kind := range programKinds {
		t.Run(kind.name, func(t *testing.T) {
			path := buildProgram(t, "jumptab", kind.name)
			var args []string
			if kind.name == kern.Exec {
				args = []string{"goto"}
			}
			want, wantCode := runNative(t, path, args...)
			for _, low := range []bool{true, false} {
				env := []string{"REACHVM_PROGRAM_STATS=1"}
				if low {
					env = append(env, "REACHVM_PROGRAM_LOW=1")
				}
				got, stderr, code := runProgramEnv(t, path, env, programTimeout, args...)
				if code != wantCode || got != want {
					t.Fatalf("low %v: status %d, output:\n%s\nstderr: %s\nwant status %d, output:\n%s", low, code, got, stderr, wantCode, want)
				}
				tables, invalidated := statField(t, stderr, "JumpTables"), statField(t, stderr, "Invalidated")
				switch {
				case low && tables == 0, !low && tables != 0:
					t.Errorf("low %v: %d jump tables translated", low, tables)
				case low && kind.name == kern.Exec && invalidated == 0:
					t.Errorf("low: no fragment deleted for the goto table's changes")
				}
			}
		})
	}
}

// statField returns field name of the Stats a child printed last on
// stderr (REACHVM_PROGRAM_STATS).
func statField(t *testing.T, stderr, name string) int {
	t.Helper()
	m := regexp.MustCompile(`\b` + name + `:(\d+)\b`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no %s in the child's stderr:\n%s", name, stderr)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestJumpTableOwnIndex checks that k_interp's switch, which gcc compiles
// to `movsxd rax, dword [rsi+rax*4]; add rax, rsi; jmp rax` (the load
// overwrites its own index), is translated through a table with vmcode
// low, and that the result is native's with and without tables.
func TestJumpTableOwnIndex(t *testing.T) {
	for _, noTables := range []bool{false, true} {
		m, _ := newTestMachine(t, vmm.Config{VMCodeBase: lowBase}, &Options{NoJumpTables: noTables})
		lib := loadKernels(t, m.v)
		fn := lookup(t, lib, "k_interp")
		want := Call(fn, 300)
		got, err := m.Run(fn, 300)
		if err != nil || got != want {
			t.Fatalf("NoJumpTables %v: %#x, %v; native %#x", noTables, got, err, want)
		}
		switch n := m.Stats().JumpTables; {
		case !noTables && n == 0:
			t.Errorf("k_interp's switch took no translated table")
		case noTables && n != 0:
			t.Errorf("NoJumpTables: %d tables translated", n)
		}
	}
}

// BenchmarkJumpTables times k_interp, a switch interpreter, natively, with
// its switch translated into a table of cache addresses ("tables") and
// with Options.NoJumpTables ("sites", the baseline: an indirect-branch
// site), in one process with vmcode low.
func BenchmarkJumpTables(b *testing.B) {
	const n = 3000
	for _, c := range []struct {
		name string
		opts Options
	}{{"tables", Options{}}, {"sites", Options{NoJumpTables: true}}} {
		m, _ := newTestMachine(b, vmm.Config{VMCodeBase: lowBase}, &c.opts)
		lib := loadKernels(b, m.v)
		fn := lookup(b, lib, "k_interp")
		want := Call(fn, n)
		if c.name == "tables" {
			b.Run("native", func(b *testing.B) {
				m.RunNative(fn, n)
				for b.Loop() {
					m.RunNative(fn, n)
				}
			})
		}
		b.Run(c.name, func(b *testing.B) {
			if got, err := m.Run(fn, n); err != nil || got != want {
				b.Fatalf("%#x, %v; native %#x", got, err, want)
			}
			for b.Loop() {
				m.Run(fn, n)
			}
		})
	}
}

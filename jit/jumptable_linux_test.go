//go:build linux && amd64

package jit

import (
	"regexp"
	"strconv"
	"testing"

	kern "github.com/reachvm/reachvm/jit/kernels"
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

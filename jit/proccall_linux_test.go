//go:build linux && amd64

package jit

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestProcessCalls runs proccalls, which makes the process calls ld.so
// and libc make at start, natively and under reachvm: the same lines,
// but for rseq, which fails with ENOSYS under reachvm, and the stack
// limit, which is the size of the stack reachvm gave the program.
func TestProcessCalls(t *testing.T) {
	for _, kind := range programKinds {
		t.Run(kind.name, func(t *testing.T) {
			prog := buildProgram(t, "proccalls", kind.name)
			exe := exePath(prog)
			// Natively only the ET_EXEC build runs (see TestPrograms);
			// its own path is what its readlink gives.
			ref := buildProgram(t, "proccalls", "exec")
			want, wantCode := runNative(t, ref, exePath(ref))
			got, stderr, code := runProgram(t, prog, kind.name == "pie", exe)
			if code != wantCode {
				t.Fatalf("status %d, want %d; output:\n%s\nstderr: %s", code, wantCode, got, stderr)
			}
			wl, gl := lines(want), lines(got)
			if len(wl) != len(gl) {
				t.Fatalf("%d lines, want %d:\n%s\nwant:\n%s", len(gl), len(wl), got, want)
			}
			for i := range wl {
				key := strings.Fields(wl[i])[0]
				switch key {
				case "rseq":
					if wl[i] != "rseq 0" || gl[i] != "rseq -38" {
						t.Errorf("%q natively, %q under reachvm: want 0 and ENOSYS", wl[i], gl[i])
					}
					continue
				case "stack_cur_mib", "prlimit_old_mib":
					if want := key + " 8"; gl[i] != want {
						t.Errorf("under reachvm %q, want %q: the stack reachvm gave", gl[i], want)
					}
					continue
				}
				if gl[i] != wl[i] {
					t.Errorf("under reachvm %q, natively %q", gl[i], wl[i])
				}
			}
			t.Logf("under reachvm:\n%s", got)
		})
	}
}

// lines splits s into its lines, without the last empty one.
func lines(s string) []string {
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// TestProgramMremap runs memremap, which grows, shrinks and moves
// anonymous memory, a file view and code with mremap, natively and under
// reachvm: the same lines and status.
func TestProgramMremap(t *testing.T) {
	for _, kind := range programKinds {
		t.Run(kind.name, func(t *testing.T) {
			prog := buildProgram(t, "memremap", kind.name)
			ref := buildProgram(t, "memremap", "exec")
			want, wantCode := runNative(t, ref, ref)
			got, stderr, code := runProgram(t, prog, kind.name == "pie", prog)
			if raceEnabled {
				// The race runtime maps memory of its own from
				// other threads while the program runs, and may
				// take the pages mremap just freed before the
				// program looks at them again (it did once in
				// CI); natively nothing else runs.
				got = strings.Replace(got, "fixed_old_gone 0\n", "fixed_old_gone 1\n", 1)
			}
			if code != wantCode || got != want {
				t.Errorf("status %d, output:\n%s\nstderr: %s\nwant status %d, output:\n%s", code, got, stderr, wantCode, want)
			}
		})
	}
}

// TestProgramMapShared runs memshared, which maps a file MAP_SHARED and
// writes through it, natively and under reachvm: the same lines and
// status.
func TestProgramMapShared(t *testing.T) {
	for _, kind := range programKinds {
		t.Run(kind.name, func(t *testing.T) {
			prog := buildProgram(t, "memshared", kind.name)
			ref := buildProgram(t, "memshared", "exec")
			dir := t.TempDir()
			want, wantCode := runNative(t, ref, filepath.Join(dir, "native"))
			got, stderr, code := runProgram(t, prog, kind.name == "pie", filepath.Join(dir, "reachvm"))
			if code != wantCode || got != want {
				t.Errorf("status %d, output:\n%s\nstderr: %s\nwant status %d, output:\n%s", code, got, stderr, wantCode, want)
			}
		})
	}
}

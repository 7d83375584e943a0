//go:build linux && amd64

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reachvm/reachvm/jit/kernels"
)

// TestRunNativeClient: `reachvm run -c FILE.so -o REPORT` runs a native
// client (the C inscount example, built with gcc), whose report is the
// Go sample's; a file that is not a client fails the run before the
// program starts, with status 125 and the reason.
func TestRunNativeClient(t *testing.T) {
	prog, err := kernels.Program("kernels", kernels.Exec)
	if err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	so := filepath.Join(dir, "inscount.so")
	gcc := exec.Command("gcc", "-O2", "-fPIC", "-shared", "-nostdlib", "-ffreestanding", "-fno-stack-protector",
		"-mgeneral-regs-only", "-I", "../../include", "-o", so, "../../examples/inscount.c")
	if out, err := gcc.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	native, err := exec.Command(prog, "k_fib", "20").Output()
	if err != nil {
		t.Fatal(err)
	}
	reports := map[string]string{}
	for _, client := range []string{so, "inscount"} {
		report := filepath.Join(dir, "report-"+filepath.Base(client))
		out, stderr, code := runChild(t, "-c", client, "-o", report, "--", prog, "k_fib", "20")
		if code != 0 || out != string(native) {
			t.Fatalf("-c %s: status %d, stdout %q, stderr %q", client, code, out, stderr)
		}
		b, err := os.ReadFile(report)
		if err != nil {
			t.Fatal(err)
		}
		reports[client] = string(b)
	}
	if reports[so] != reports["inscount"] || !strings.HasPrefix(reports[so], `{"client":"inscount","instructions":`) {
		t.Errorf("C inscount %q, Go inscount %q", reports[so], reports["inscount"])
	}
	_, stderr, code := runChild(t, "-c", "/bin/true", "--", prog, "k_fib", "20")
	if code != 125 || !strings.Contains(stderr, "a program, not a shared object") {
		t.Errorf("-c /bin/true: status %d, stderr %q", code, stderr)
	}
}

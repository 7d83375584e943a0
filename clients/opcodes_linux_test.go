//go:build linux && amd64

package clients

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reachvm/reachvm/jit"
	"github.com/reachvm/reachvm/jit/kernels"
	"github.com/reachvm/reachvm/vmcode"
	"github.com/reachvm/reachvm/vmm"
)

// TestOpcodesChild is not a test: run by runOpcodes in a child process
// (REACHVM_OPCODES_PROGRAM set), it runs a program under a machine whose
// client is opcodes and inscount together, writes both reports to the
// file REACHVM_OPCODES_OUT, and exits with the program's status (111 if
// the run failed).
func TestOpcodesChild(t *testing.T) {
	path := os.Getenv("REACHVM_OPCODES_PROGRAM")
	if path == "" {
		t.Skip("a helper for the opcodes tests")
	}
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(111)
	}
	oc, err := New("opcodes", nil)
	if err != nil {
		fail(err)
	}
	ic, err := New("inscount", nil)
	if err != nil {
		fail(err)
	}
	v, err := vmm.New(vmm.Config{VMCodeBase: jit.DefaultVMCodeBase, AllowElsewhere: true, VMCodeSize: 256 << 20, VMHeapSize: 256 << 20})
	if err != nil {
		fail(err)
	}
	client := &jit.Client{Block: func(b *jit.Block) {
		oc.Client.Block(b)
		ic.Client.Block(b)
	}}
	m, err := jit.NewMachine(vmcode.New(v), &jit.Options{Client: client})
	if err != nil {
		fail(err)
	}
	p, err := m.LoadProgram(path)
	if err != nil {
		fail(err)
	}
	args := []string{path}
	if a := os.Getenv("REACHVM_OPCODES_ARGS"); a != "" {
		args = append(args, strings.Split(a, " ")...)
	}
	code, err := p.Run(args, []string{"LC_ALL=C"})
	if err != nil {
		fail(err)
	}
	var out bytes.Buffer
	if err := oc.Report(&out); err != nil {
		fail(err)
	}
	if err := ic.Report(&out); err != nil {
		fail(err)
	}
	if err := os.WriteFile(os.Getenv("REACHVM_OPCODES_OUT"), out.Bytes(), 0o644); err != nil {
		fail(err)
	}
	os.Exit(code)
}

// opcodesRun is what runOpcodes saw.
type opcodesRun struct {
	// counts are the opcodes report's counts; order its mnemonics in
	// the report's order.
	counts map[string]uint64
	order  []string
	// total is the opcodes report's "instructions", inscount the
	// inscount report's.
	total, inscount uint64
}

// runOpcodes runs path with args under opcodes and inscount in a child
// process and returns their reports.
func runOpcodes(t *testing.T, path string, args ...string) opcodesRun {
	t.Helper()
	out := filepath.Join(t.TempDir(), "report")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestOpcodesChild$")
	cmd.Env = append(os.Environ(), "REACHVM_OPCODES_PROGRAM="+path, "REACHVM_OPCODES_ARGS="+strings.Join(args, " "), "REACHVM_OPCODES_OUT="+out)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %q: %v\n%s", path, args, err, stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	var lines [][]byte
	for sc.Scan() {
		lines = append(lines, append([]byte(nil), sc.Bytes()...))
	}
	if len(lines) != 2 {
		t.Fatalf("reports: %q", b)
	}
	var r opcodesRun
	var rep struct {
		Client       string            `json:"client"`
		Instructions uint64            `json:"instructions"`
		Opcodes      map[string]uint64 `json:"opcodes"`
	}
	if err := json.Unmarshal(lines[0], &rep); err != nil || rep.Client != "opcodes" {
		t.Fatalf("opcodes report %s: %v", lines[0], err)
	}
	r.counts, r.total = rep.Opcodes, rep.Instructions
	// The order, which a map loses: the keys of the "opcodes" object.
	dec := json.NewDecoder(bytes.NewReader(lines[0][bytes.Index(lines[0], []byte(`"opcodes":`))+len(`"opcodes":`):]))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("opcodes object: %v %v", tok, err)
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := dec.Token(); err != nil {
			t.Fatal(err)
		}
		r.order = append(r.order, k.(string))
	}
	var ins struct {
		Client       string `json:"client"`
		Instructions uint64 `json:"instructions"`
	}
	if err := json.Unmarshal(lines[1], &ins); err != nil || ins.Client != "inscount" {
		t.Fatalf("inscount report %s: %v", lines[1], err)
	}
	r.inscount = ins.Instructions
	return r
}

// checkSums: the counts sum to the report's total, which is inscount's,
// and the report lists them in decreasing order.
func checkSums(t *testing.T, r opcodesRun) {
	t.Helper()
	var sum uint64
	for _, v := range r.counts {
		sum += v
	}
	if sum != r.total || r.total != r.inscount || r.total == 0 {
		t.Errorf("opcodes sum %d, report's total %d, inscount %d", sum, r.total, r.inscount)
	}
	if len(r.order) != len(r.counts) {
		t.Errorf("order %d mnemonics, counts %d", len(r.order), len(r.counts))
	}
	for i := 1; i < len(r.order); i++ {
		if r.counts[r.order[i-1]] < r.counts[r.order[i]] {
			t.Errorf("%s (%d) before %s (%d)", r.order[i-1], r.counts[r.order[i-1]], r.order[i], r.counts[r.order[i]])
		}
	}
	top := r.order[:min(8, len(r.order))]
	var s []string
	for _, k := range top {
		s = append(s, fmt.Sprintf("%s %d", k, r.counts[k]))
	}
	t.Logf("%d instructions, %d mnemonics; top: %s", r.total, len(r.counts), strings.Join(s, ", "))
}

// TestOpcodesKernel runs the kernels program's k_sse2 and k_interp under
// opcodes and inscount: the counts sum to inscount's, and the SSE2 kernel's
// packed arithmetic shows.
func TestOpcodesKernel(t *testing.T) {
	path, err := kernels.Program("kernels", kernels.Exec)
	if errors.Is(err, kernels.ErrNoCompiler) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"k_sse2", "k_interp"} {
		t.Run(k, func(t *testing.T) {
			r := runOpcodes(t, path, k, "100")
			checkSums(t, r)
			if r.counts["(unknown)"] != 0 {
				t.Errorf("%d instructions not named", r.counts["(unknown)"])
			}
		})
	}
}

// TestOpcodesLs runs /bin/ls (ld.so, libc, the dynamic loader's start-up)
// under opcodes and inscount: the counts sum to inscount's.
func TestOpcodesLs(t *testing.T) {
	if _, err := os.Stat("/bin/ls"); err != nil {
		t.Skip(err)
	}
	r := runOpcodes(t, "/bin/ls", "-d", "/")
	checkSums(t, r)
	for _, mn := range []string{"mov", "call", "ret", "syscall"} {
		if r.counts[mn] == 0 {
			t.Errorf("no %s counted", mn)
		}
	}
}

// TestOpcodesLoop runs testdata/opcodes_loop.c, built by gcc with no
// libc: its loop's four mnemonics are counted exactly LOOPS times each,
// and they are almost all it runs.
func TestOpcodesLoop(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("no gcc")
	}
	const loops = 100000
	bin := filepath.Join(t.TempDir(), "opcodes_loop")
	cmd := exec.Command("gcc", "-O1", "-nostdlib", "-static", "-fno-pie", "-no-pie", "-fcf-protection=none",
		fmt.Sprintf("-Wl,-Ttext-segment=%#x", kernels.ExecBase), fmt.Sprintf("-DLOOPS=%d", loops), "-o", bin, "testdata/opcodes_loop.c")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	r := runOpcodes(t, bin)
	checkSums(t, r)
	for _, mn := range []string{"bswap", "rol", "dec", "jne"} {
		if r.counts[mn] != loops {
			t.Errorf("%s counted %d times, want %d", mn, r.counts[mn], loops)
		}
	}
	if r.total < 4*loops || r.total > 4*loops+20 {
		t.Errorf("%d instructions, want 4*%d and the few around the loop", r.total, loops)
	}
}

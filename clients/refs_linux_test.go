//go:build linux && amd64

package clients

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reachvm/reachvm/jit"
	"github.com/reachvm/reachvm/vmcode"
	"github.com/reachvm/reachvm/vmm"
)

// The reference tests compare the sample clients with valgrind on the
// same gcc-built programs: lackey's "guest instrs" is the instruction
// count of record, exp-bbv's per-thread totals and its count of rep
// iterations explain the differences. The program runs under reachvm in
// a child process of the test binary (TestRefChild), so that its
// output, its threads and its exit are a process's own.

// refResult is what TestRefChild reports of a run.
type refResult struct {
	// Status is the program's exit status.
	Status int
	// Inscount and BBCount are the sample clients' "instructions".
	Inscount, BBCount uint64
	// All counts each block's length at its start, as inscount does,
	// but with a counter of the test's own, whose per-thread parts
	// Threads hold.
	All uint64
	// Reps counts executions of rep-prefixed string instructions.
	Reps uint64
	// Range counts the instructions of the blocks that start in the
	// range REACHVM_REF_RANGE names (a function of the program).
	Range uint64
	// Threads are the threads' own counts, in the order they ended.
	Threads []refThread
	// Blocks are the executions of each block in the range, by
	// "PC+LEN" (a block translated again may end elsewhere).
	Blocks map[string]uint64
}

// refThread is one thread's part of All and Range.
type refThread struct {
	TID        int
	All, Range uint64
}

// TestRefChild is not a test: run by runRef in a child process
// (REACHVM_REF_PROG set), it runs the program with inscount, bbcount and
// the test's counters on one machine, writes a refResult as JSON to
// REACHVM_REF_OUT and exits with the program's status. Its arguments are
// REACHVM_REF_ARGS, separated by \x1f; REACHVM_REF_RANGE is "LO-HI" in
// hex; REACHVM_REF_NOVDSO set runs without the vDSO.
func TestRefChild(t *testing.T) {
	prog := os.Getenv("REACHVM_REF_PROG")
	if prog == "" {
		t.Skip("a helper for the reference tests")
	}
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(111)
	}
	var lo, hi uintptr
	if r := os.Getenv("REACHVM_REF_RANGE"); r != "" {
		if _, err := fmt.Sscanf(r, "%x-%x", &lo, &hi); err != nil {
			fail(fmt.Errorf("REACHVM_REF_RANGE %q: %v", r, err))
		}
	}
	ins, err := New("inscount", nil)
	if err != nil {
		fail(err)
	}
	bb, err := New("bbcount", nil)
	if err != nil {
		fail(err)
	}
	all, reps, inRange := jit.NewCounter(jit.PerThread), jit.NewCounter(jit.PerThread), jit.NewCounter(jit.PerThread)
	var mu sync.Mutex
	var res refResult
	blocks := map[string]*jit.Counter{}
	client := &jit.Client{
		Block: func(b *jit.Block) {
			ins.Client.Block(b)
			bb.Client.Block(b)
			b.AddCounter(0, all, int64(b.Len()))
			if pc := b.PC(); pc >= lo && pc < hi {
				b.AddCounter(0, inRange, int64(b.Len()))
				k := fmt.Sprintf("%#x+%d", pc, b.Len())
				mu.Lock()
				c := blocks[k]
				if c == nil {
					c = jit.NewCounter(jit.PerThread)
					blocks[k] = c
				}
				mu.Unlock()
				b.AddCounter(0, c, 1)
			}
			for i := 0; i < b.Len(); i++ {
				if isRepString(b.Instr(i).Bytes()) {
					b.AddCounter(i, reps, 1)
				}
			}
		},
		ThreadExit: func(th *jit.Thread) {
			mu.Lock()
			defer mu.Unlock()
			res.Threads = append(res.Threads, refThread{TID: th.TID, All: th.Value(all), Range: th.Value(inRange)})
		},
	}
	v, err := vmm.New(vmm.Config{VMCodeBase: jit.DefaultVMCodeBase, AllowElsewhere: true, VMCodeSize: 256 << 20, VMHeapSize: 256 << 20})
	if err != nil {
		fail(err)
	}
	m, err := jit.NewMachine(vmcode.New(v), &jit.Options{Client: client, NoVDSO: os.Getenv("REACHVM_REF_NOVDSO") != ""})
	if err != nil {
		fail(err)
	}
	p, err := m.LoadProgram(prog)
	if err != nil {
		fail(err)
	}
	argv := []string{prog}
	if a := os.Getenv("REACHVM_REF_ARGS"); a != "" {
		argv = append(argv, strings.Split(a, "\x1f")...)
	}
	status, err := p.Run(argv, refEnv)
	if err != nil {
		fail(err)
	}
	res.Status, res.All, res.Reps, res.Range = status, all.Value(), reps.Value(), inRange.Value()
	res.Blocks = map[string]uint64{}
	for k, c := range blocks {
		res.Blocks[k] = c.Value()
	}
	if res.Inscount, err = reportInstrs(ins); err != nil {
		fail(err)
	}
	if res.BBCount, err = reportInstrs(bb); err != nil {
		fail(err)
	}
	b, _ := json.Marshal(res)
	if err := os.WriteFile(os.Getenv("REACHVM_REF_OUT"), b, 0o644); err != nil {
		fail(err)
	}
	os.Exit(status)
}

// refEnv is the programs' environment, the same under reachvm and
// valgrind: ld.so and the C library read it at start-up, so its size
// is part of their instruction count.
var refEnv = []string{"PATH=/usr/bin:/bin", "LC_ALL=C"}

// reportInstrs returns the "instructions" of a tool's report.
func reportInstrs(tool *Tool) (uint64, error) {
	var buf bytes.Buffer
	if err := tool.Report(&buf); err != nil {
		return 0, err
	}
	var r struct {
		Instructions *uint64 `json:"instructions"`
	}
	if err := json.Unmarshal(buf.Bytes(), &r); err != nil || r.Instructions == nil {
		return 0, fmt.Errorf("%s's report %q has no instructions (%v)", tool.Name, buf.String(), err)
	}
	return *r.Instructions, nil
}

// isRepString reports whether code is a rep-prefixed string instruction
// (movs, stos, cmps, scas, lods, ins, outs), which valgrind counts once
// per iteration and inscount once.
func isRepString(code []byte) bool {
	rep := false
	i := 0
	for ; i < len(code); i++ {
		switch c := code[i]; c {
		case 0xf2, 0xf3:
			rep = true
			continue
		case 0x66, 0x67, 0x2e, 0x36, 0x3e, 0x26, 0x64, 0x65, 0xf0:
			continue
		}
		break
	}
	if i < len(code) && code[i]&0xf0 == 0x40 { // REX
		i++
	}
	if !rep || i >= len(code) {
		return false
	}
	switch code[i] {
	case 0x6c, 0x6d, 0x6e, 0x6f, 0xa4, 0xa5, 0xa6, 0xa7, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf:
		return true
	}
	return false
}

// TestIsRepString: the rep-prefixed string instructions, with operand
// size and REX prefixes, are; a rep ret, a pause (rep nop) and a plain
// movsb are not.
func TestIsRepString(t *testing.T) {
	for _, tc := range []struct {
		code []byte
		want bool
	}{
		{[]byte{0xf3, 0xa4}, true},              // rep movsb
		{[]byte{0xf3, 0x48, 0xab}, true},        // rep stosq
		{[]byte{0x66, 0xf3, 0xab}, true},        // rep stosw
		{[]byte{0xf3, 0xa6}, true},              // repe cmpsb
		{[]byte{0xf2, 0xae}, true},              // repne scasb
		{[]byte{0x67, 0xf3, 0x48, 0xa5}, true},  // rep movsq, 32-bit addresses
		{[]byte{0xa4}, false},                   // movsb
		{[]byte{0xf3, 0xc3}, false},             // rep ret
		{[]byte{0xf3, 0x90}, false},             // pause
		{[]byte{0xf3, 0x0f, 0xbc, 0xc0}, false}, // tzcnt
		{[]byte{0xf3}, false},
		{nil, false},
	} {
		if got := isRepString(tc.code); got != tc.want {
			t.Errorf("isRepString(% x) = %v, want %v", tc.code, got, tc.want)
		}
	}
}

// needValgrind fails the test in CI (CI=true), where .ci/run installs
// valgrind, and skips it elsewhere when valgrind is absent.
func needValgrind(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("valgrind"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("valgrind, the reference, is not installed: %v", err)
		}
		t.Skipf("valgrind, the reference, is not installed: %v", err)
	}
}

// needGCC is needValgrind for gcc.
func needGCC(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("gcc is not installed: %v", err)
		}
		t.Skipf("gcc is not installed: %v", err)
	}
}

// refTimeout bounds each run of a program, under reachvm or valgrind.
const refTimeout = 2 * time.Minute

// command runs name with args and env, with refTimeout, and returns its
// standard output and error; it fails the test unless the exit status
// is 0.
func command(t *testing.T, env []string, name string, args ...string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), refTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %q: %v\nstdout %q\nstderr %s", name, args, err, stdout.String(), stderr.String())
	}
	return stdout.String(), stderr.String()
}

// runRef runs prog under reachvm (TestRefChild) with args, the extra
// environment of TestRefChild env, and returns its result and output,
// having checked that its counts agree (agree).
func runRef(t *testing.T, env []string, prog string, args ...string) (refResult, string) {
	t.Helper()
	r, out := runRefRaw(t, env, prog, args...)
	if err := r.agree(); err != nil {
		t.Errorf("%s %q: %v", prog, args, err)
	}
	return r, out
}

// runRefRaw is runRef without the check.
func runRefRaw(t *testing.T, env []string, prog string, args ...string) (refResult, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "ref.json")
	env = append(append(os.Environ(), "REACHVM_REF_PROG="+prog, "REACHVM_REF_OUT="+out,
		"REACHVM_REF_ARGS="+strings.Join(args, "\x1f")), env...)
	stdout, _ := command(t, env, os.Args[0], "-test.run=^TestRefChild$")
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var r refResult
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r, stdout
}

// agree checks that the sample clients and the test's own count agree,
// and that the threads' counts sum to the total.
func (r *refResult) agree() error {
	if r.Inscount != r.All || r.BBCount != r.Inscount {
		return fmt.Errorf("inscount %d, bbcount %d, the test's count %d: not equal", r.Inscount, r.BBCount, r.All)
	}
	var sum uint64
	for _, th := range r.Threads {
		sum += th.All
	}
	if sum != r.All {
		return fmt.Errorf("the threads' counts %v sum to %d, the total is %d", r.Threads, sum, r.All)
	}
	return nil
}

// guestInstrs matches lackey's total.
var guestInstrs = regexp.MustCompile(`guest instrs:\s+([0-9,]+)`)

// lackey returns valgrind lackey's "guest instrs" of prog with args,
// and its standard output. Valgrind runs no freeres at the exit, which
// the program would not.
func lackey(t *testing.T, prog string, args ...string) (uint64, string) {
	t.Helper()
	stdout, stderr := command(t, refEnv, "valgrind", append([]string{"--tool=lackey", "--run-libc-freeres=no", "--run-cxx-freeres=no", prog}, args...)...)
	m := guestInstrs.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("lackey %s %q: no guest instrs in %s", prog, args, stderr)
	}
	n, err := strconv.ParseUint(strings.ReplaceAll(m[1], ",", ""), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n, stdout
}

// bbvThread is one of exp-bbv's per-thread totals.
type bbvThread struct {
	// Instrs counts a rep-prefixed instruction once per execution, as
	// inscount does; Reps counts its iterations as lackey does.
	Instrs, Reps uint64
}

var bbvTotals = regexp.MustCompile(`(?m)# Thread (\d+)\n.*\n.*Total instructions: (\d+)\n.*Total reps: (\d+)`)

// bbv returns valgrind exp-bbv's totals of prog with args by valgrind
// thread slot (1 is the main thread's; a slot an ended thread left is
// reused, so one slot may sum several threads).
func bbv(t *testing.T, prog string, args ...string) map[int]bbvThread {
	t.Helper()
	dir := t.TempDir()
	_, stderr := command(t, refEnv, "valgrind", append([]string{"--tool=exp-bbv", "--run-libc-freeres=no", "--run-cxx-freeres=no",
		"--bb-out-file=" + filepath.Join(dir, "bb.out"), "--pc-out-file=" + filepath.Join(dir, "pc.out"), prog}, args...)...)
	stderr = regexp.MustCompile(`(?m)^==\d+== `).ReplaceAllString(stderr, "")
	out := map[int]bbvThread{}
	for _, m := range bbvTotals.FindAllStringSubmatch(stderr, -1) {
		slot, _ := strconv.Atoi(m[1])
		instrs, _ := strconv.ParseUint(m[2], 10, 64)
		reps, _ := strconv.ParseUint(m[3], 10, 64)
		out[slot] = bbvThread{instrs, reps}
	}
	if len(out) == 0 {
		t.Fatalf("exp-bbv %s %q: no totals in %s", prog, args, stderr)
	}
	return out
}

// gccBuild compiles clients/testdata/src with flags into a directory of
// the test's and returns the executable's path.
func gccBuild(t *testing.T, src string, flags ...string) string {
	t.Helper()
	needGCC(t)
	out := filepath.Join(t.TempDir(), strings.TrimSuffix(src, ".c"))
	args := append(append([]string{}, flags...), "-o", out, filepath.Join("testdata", src))
	if b, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return out
}

// symbolRange returns the address range of the function sym in the
// ET_EXEC at path, as REACHVM_REF_RANGE takes it.
func symbolRange(t *testing.T, path, sym string) string {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range syms {
		if s.Name == sym && elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Size > 0 {
			return fmt.Sprintf("%x-%x", s.Value, s.Value+s.Size)
		}
	}
	t.Fatalf("no function %s in %s", sym, path)
	return ""
}

// execFlags link a C program as an ET_EXEC at 0x60000000, where the
// test binary (a Go executable at 0x400000) leaves room and valgrind can
// run it (it cannot run a static PIE). jit/kernels.ExecBase is the same.
var execFlags = []string{"-O2", "-Wall", "-no-pie", "-Wl,-Ttext-segment=0x60000000"}

var errNoRun = errors.New("not run")

//go:build linux && amd64

package clients

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/reachvm/reachvm/jit"
	"github.com/reachvm/reachvm/jit/kernels"
	"github.com/reachvm/reachvm/vmcode"
	"github.com/reachvm/reachvm/vmm"
)

// The native clients' tests build C with gcc: the examples and the
// clients and programs of testdata, into one directory the test binary
// removes when it ends. A program runs under a client in a child process
// (TestNativeChild), whose output and status the test sees, and whose
// report goes to a file.

// freestanding are the flags of a client without the C library, as
// include/reachvm.h gives them.
var freestanding = []string{"-O2", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared", "-nostdlib", "-ffreestanding",
	"-fno-stack-protector", "-mgeneral-regs-only"}

// buildDir holds what the tests build; builds maps an output's name to
// its build's result.
var (
	buildMu  sync.Mutex
	buildDir string
	builds   = map[string]buildResult{}
)

type buildResult struct {
	// src is what the output was built from: one name, one source.
	src  string
	path string
	err  error
}

// buildC compiles src (relative to this package) with flags into name
// in the build directory, once per test binary, and returns its path: with
// gcc, or g++ for a .cc file. Without gcc it skips the test, but in CI
// fails it.
func buildC(t testing.TB, name, src string, flags ...string) string {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("gcc is missing")
		}
		t.Skip("gcc is missing")
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	r, ok := builds[name]
	if ok && r.src != src {
		t.Fatalf("buildC: %s is built from %s already, not %s", name, r.src, src)
	}
	if !ok {
		r.src = src
		if buildDir == "" {
			if buildDir, r.err = os.MkdirTemp("", "reachvm-clients-"); r.err != nil {
				t.Fatal(r.err)
			}
		}
		r.path = filepath.Join(buildDir, name)
		cc := "gcc"
		if strings.HasSuffix(src, ".cc") {
			cc = "g++"
		}
		args := append(append([]string{"-I", "../include"}, flags...), "-o", r.path, src)
		if out, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
			r.err = fmt.Errorf("%s %s: %v\n%s", cc, strings.Join(args, " "), err, out)
		}
		builds[name] = r
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.path
}

// example builds the example client name (examples/NAME.c) freestanding.
func example(t testing.TB, name string) string {
	t.Helper()
	// Named apart from testdata's clients (testdata/memtrace.c too):
	// builds are kept by name.
	return buildC(t, "example-"+name+".so", "../examples/"+name+".c", freestanding...)
}

// testClient builds testdata/NAME.c as a freestanding client.
func testClient(t testing.TB, name string) string {
	t.Helper()
	return buildC(t, name+".so", "testdata/"+name+".c", freestanding...)
}

// kernelsProgram builds the jit's kernels program (a static executable
// at a fixed address, no C library).
func kernelsProgram(t testing.TB) string {
	t.Helper()
	p, err := kernels.Program("kernels", kernels.Exec)
	if errors.Is(err, kernels.ErrNoCompiler) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestMain removes what the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// childEnv are the environment variables of TestNativeChild: the client
// (a sample's name or a native client's path), its arguments and the
// program's, each list joined with \x1f; the report's file; whether the
// report goes through a bytes.Buffer (a pipe, for a native client)
// rather than to the file itself.
const (
	envClient     = "REACHVM_CLIENTS_CLIENT"
	envClientArgs = "REACHVM_CLIENTS_CLIENT_ARGS"
	envProgram    = "REACHVM_CLIENTS_PROGRAM"
	envReport     = "REACHVM_CLIENTS_REPORT"
	envBuffer     = "REACHVM_CLIENTS_BUFFER"
)

// childFailed is TestNativeChild's status when the client or the run
// fails (the error on stderr); childReportFailed when the report does.
const (
	childFailed       = 111
	childReportFailed = 112
)

// TestNativeChild is not a test: run by runClient in a child process, it
// runs a program under a fresh machine with a client, writes the
// client's report to the report file and vmcode's [BASE,SIZE] to that
// file's name with .vmcode added, and exits with the program's status.
func TestNativeChild(t *testing.T) {
	client := os.Getenv(envClient)
	if client == "" {
		t.Skip("a helper for the native client tests")
	}
	fail := func(code int, err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(code)
	}
	split := func(s string) []string {
		if s == "" {
			return nil
		}
		return strings.Split(s, "\x1f")
	}
	// vmcode where run puts it: the program's libraries then go to
	// the same addresses in every run.
	v, err := vmm.New(vmm.Config{VMCodeBase: jit.DefaultVMCodeBase, AllowElsewhere: true, VMCodeSize: 256 << 20, VMHeapSize: 256 << 20})
	if err != nil {
		fail(childFailed, err)
	}
	tool, err := NewIn(v, client, split(os.Getenv(envClientArgs)))
	if err != nil {
		fail(childFailed, err)
	}
	m, err := jit.NewMachine(vmcode.New(v), &jit.Options{Client: tool.Client})
	if err != nil {
		fail(childFailed, err)
	}
	argv := split(os.Getenv(envProgram))
	p, err := m.LoadProgram(argv[0])
	if err != nil {
		fail(childFailed, err)
	}
	code, runErr := p.Run(argv, []string{"HOME=/"})
	f, err := os.Create(os.Getenv(envReport))
	if err != nil {
		fail(childReportFailed, err)
	}
	if os.Getenv(envBuffer) != "" {
		var buf bytes.Buffer
		err = tool.Report(&buf)
		f.Write(buf.Bytes())
	} else {
		err = tool.Report(f)
	}
	if err != nil {
		fail(childReportFailed, err)
	}
	if err := f.Close(); err != nil {
		fail(childReportFailed, err)
	}
	base, size := v.VMCode()
	if err := os.WriteFile(os.Getenv(envReport)+".vmcode", fmt.Appendf(nil, "[%d,%d]", base, size), 0o644); err != nil {
		fail(childReportFailed, err)
	}
	if runErr != nil {
		fail(childFailed, runErr)
	}
	if err := tool.Close(); err != nil {
		fail(childFailed, err)
	}
	os.Exit(code)
}

// childRun is what runClient saw of a child's run.
type childRun struct {
	stdout, stderr string
	status         int
	// report is the client's report; vmcode the child's vmcode, [base,
	// base+size).
	report string
	vmcode [2]uintptr
}

// runClient runs argv under client (with clientArgs) in a child process
// and returns what it did; buffered sends the report through a
// bytes.Buffer.
func runClient(t *testing.T, client string, clientArgs []string, buffered bool, argv ...string) childRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	report := filepath.Join(t.TempDir(), "report")
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestNativeChild$")
	cmd.Env = append(os.Environ(), envClient+"="+client, envClientArgs+"="+strings.Join(clientArgs, "\x1f"),
		envProgram+"="+strings.Join(argv, "\x1f"), envReport+"="+report)
	if buffered {
		cmd.Env = append(cmd.Env, envBuffer+"=1")
	}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s under %s: still running after 2 minutes", argv, client)
	}
	r := childRun{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.status = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(report)
	r.report = string(b)
	if b, err := os.ReadFile(report + ".vmcode"); err == nil {
		json.Unmarshal(b, &r.vmcode)
	}
	return r
}

// mustRun is runClient for a run that must end with status 0.
func mustRun(t *testing.T, client string, clientArgs []string, argv ...string) childRun {
	t.Helper()
	r := runClient(t, client, clientArgs, false, argv...)
	if r.status != 0 {
		t.Fatalf("%s under %s %q: status %d\nstdout: %s\nstderr: %s", argv, client, clientArgs, r.status, r.stdout, r.stderr)
	}
	return r
}

// cContext is struct rv_context, which Go does not read: the layout jit
// documents for ArgContext (rax..r15, then RFLAGS), checked against the
// header.
type cContext struct {
	regs   [16]uint64 `c:"regs"`
	rflags uint64     `c:"rflags"`
}

// TestNativeLayout: the Go mirrors of reachvm.h's structs have the C
// layout, field for field, as gcc lays them out, and the constants Go
// uses have the header's values (layout.c prints version 1's,
// layoutv2.c what version 2 added).
func TestNativeLayout(t *testing.T) {
	var out []byte
	for _, name := range []string{"layout", "layoutv2"} {
		b, err := exec.Command(buildC(t, name, "testdata/"+name+".c", "-Wall")).Output()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b...)
	}
	mirrors := map[string]reflect.Type{
		"rv_thread": reflect.TypeFor[cThread](), "rv_instr": reflect.TypeFor[cInstr](),
		"rv_arg": reflect.TypeFor[cArg](), "rv_insert": reflect.TypeFor[cInsert](),
		"rv_block": reflect.TypeFor[cBlock](), "rv_syscall": reflect.TypeFor[cSyscall](),
		"rv_exit": reflect.TypeFor[cExit](), "rv_client": reflect.TypeFor[cClient](),
		"rv_module": reflect.TypeFor[cModule](), "rv_signal": reflect.TypeFor[cSignal](),
		"rv_context": reflect.TypeFor[cContext](), "rv_trace_record": reflect.TypeFor[cTraceRecord](),
		"rv_memref": reflect.TypeFor[cMemRef](), "rv_symbol": reflect.TypeFor[cSymbol](),
		"rv_wrap": reflect.TypeFor[cWrap](), "rv_wrap_table": reflect.TypeFor[cWrapTable](),
		"rv_wrapcall": reflect.TypeFor[cWrapCall](),
	}
	consts := map[string]int{
		"RV_API_VERSION": nativeVersion, "RV_MAX_ARGS": maxArgs,
		"RV_ARG_CONST": argConst, "RV_ARG_REG": argReg, "RV_ARG_PC": argPC, "RV_ARG_EA": argEA, "RV_ARG_CONTEXT": argCtx,
		"RV_INSERT_ADD": insertAdd, "RV_INSERT_CLEAN_CALL": insertCleanCall,
		"RV_INSERT_RECORD_EA": insertRecordEA, "RV_INSERT_RECORD_ADDR": insertRecordAddr, "RV_INSERT_RECORD_REF": insertRecordRef,
		"RV_MEM_READ": memRefRead, "RV_MEM_WRITE": memRefWrite, "RV_MEM_IMPLICIT": memRefImplicit, "RV_MEM_RIP": memRefRIP,
		"RV_MEM_ADDR_ONLY": memRefAddrOnly, "RV_MEM_ADDR32": memRefAddr32, "RV_MEM_REPEAT": memRefRepeat, "RV_NO_REG": noReg,
		"RV_LOCKED": flagLocked, "RV_VECTOR": flagVector,
		"RV_R15": int(jit.R15), "RV_RSP": int(jit.RSP), "RV_ERR_VALUE": 4,
		"RV_ERR_NULL": 5, "RV_ERR_NOT_FOUND": 6, "RV_ERR_EVENT": len(blockErrors) - 1,
	}
	if s := reflect.TypeFor[cContext]().Size(); s != 136 {
		t.Errorf("struct rv_context is %d bytes; jit.ArgContext's registers and flags are 136", s)
	}
	// The trace event gets jit's records in place.
	var jr jit.TraceRecord
	var cr cTraceRecord
	if unsafe.Sizeof(jr) != unsafe.Sizeof(cr) || unsafe.Offsetof(jr.Addr) != unsafe.Offsetof(cr.addr) ||
		unsafe.Offsetof(jr.Tag) != unsafe.Offsetof(cr.tag) || unsafe.Offsetof(jr.Extra) != unsafe.Offsetof(cr.extra) {
		t.Errorf("jit.TraceRecord and struct rv_trace_record differ")
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 3 && f[0] == "const":
			want, ok := consts[f[1]]
			if !ok {
				t.Errorf("no Go constant for %s", f[1])
				continue
			}
			seen[f[1]] = true
			if got, _ := strconv.Atoi(f[2]); got != want {
				t.Errorf("%s: C %d, Go %d", f[1], got, want)
			}
		case len(f) == 3 && f[1] == "size":
			typ := mirrors[f[0]]
			seen[f[0]] = true
			if got, _ := strconv.Atoi(f[2]); typ == nil || uintptr(got) != typ.Size() {
				t.Errorf("struct %s: C size %d, Go %v", f[0], got, typ)
			}
		case len(f) == 4:
			typ := mirrors[f[0]]
			if typ == nil {
				t.Errorf("no mirror of struct %s", f[0])
				continue
			}
			off, _ := strconv.Atoi(f[2])
			size, _ := strconv.Atoi(f[3])
			found := false
			for i := range typ.NumField() {
				sf := typ.Field(i)
				if sf.Tag.Get("c") != f[1] {
					continue
				}
				found = true
				seen[f[0]+"."+f[1]] = true
				if sf.Offset != uintptr(off) || sf.Type.Size() != uintptr(size) {
					t.Errorf("%s.%s: C offset %d size %d, Go (%s) offset %d size %d", f[0], f[1], off, size, sf.Name, sf.Offset, sf.Type.Size())
				}
			}
			if !found {
				t.Errorf("%s.%s: no Go field tagged c:%q", f[0], f[1], f[1])
			}
		default:
			t.Errorf("layout printed %q", sc.Text())
		}
	}
	// Every Go field is one the C program printed: a field added on one
	// side only fails.
	for name, typ := range mirrors {
		if !seen[name] {
			t.Errorf("struct %s: not printed by layout.c", name)
		}
		for i := range typ.NumField() {
			if tag := typ.Field(i).Tag.Get("c"); !seen[name+"."+tag] {
				t.Errorf("%s field %s (c:%q): not printed by layout.c", name, typ.Field(i).Name, tag)
			}
		}
	}
	for c := range consts {
		if !seen[c] {
			t.Errorf("constant %s: not printed by layout.c", c)
		}
	}
}

// programs are the programs the counting tests run: the jit's kernels
// program (static, no C library) and a system program (dynamic).
func countPrograms(t *testing.T) [][]string {
	return [][]string{
		{kernelsProgram(t), "k_fib", "20"},
		{kernelsProgram(t), "k_sort", "4"},
		{"/bin/true"},
	}
}

// TestNativeInscount: the C inscount (an inline add into its .bss) counts
// exactly what the Go inscount counts, and reports it in the same JSON.
func TestNativeInscount(t *testing.T) {
	so := example(t, "inscount")
	for _, argv := range countPrograms(t) {
		t.Run(filepath.Base(argv[0])+"-"+strings.Join(argv[1:], "-"), func(t *testing.T) {
			c := mustRun(t, so, nil, argv...)
			g := mustRun(t, "inscount", nil, argv...)
			if c.report != g.report || c.stdout != g.stdout {
				t.Fatalf("C inscount %q (stdout %q), Go inscount %q (stdout %q)", c.report, c.stdout, g.report, g.stdout)
			}
			var r struct {
				Client       string
				Instructions uint64
			}
			if err := json.Unmarshal([]byte(c.report), &r); err != nil || r.Client != "inscount" || r.Instructions < 50 {
				t.Fatalf("report %q: %+v, %v", c.report, r, err)
			}
			t.Logf("%d instructions", r.Instructions)
		})
	}
}

// bbReport is the bbcount report.
type bbReport struct {
	Client   string
	Executed uint64 `json:"blocks_executed"`
	Distinct uint64 `json:"blocks_distinct"`
	Instrs   uint64 `json:"instructions"`
	Top      []struct {
		PC     string
		Instrs uint64 `json:"instructions"`
		Count  uint64
	}
}

// TestNativeBBCount: the C bbcount (a cell per block in its .bss)
// reports exactly what the Go bbcount does.
func TestNativeBBCount(t *testing.T) {
	so := example(t, "bbcount")
	for _, argv := range countPrograms(t) {
		t.Run(filepath.Base(argv[0])+"-"+strings.Join(argv[1:], "-"), func(t *testing.T) {
			c := mustRun(t, so, nil, argv...)
			g := mustRun(t, "bbcount", nil, argv...)
			if c.report == g.report {
				return
			}
			// A dynamic program's libraries may lie elsewhere in the
			// two runs (the native client takes a slot of vmcode):
			// then all the addresses differ by one amount.
			var cr, gr bbReport
			if err := json.Unmarshal([]byte(c.report), &cr); err != nil {
				t.Fatalf("%v: %s", err, c.report)
			}
			if err := json.Unmarshal([]byte(g.report), &gr); err != nil {
				t.Fatalf("%v: %s", err, g.report)
			}
			same := len(cr.Top) == len(gr.Top) && len(cr.Top) > 0 && cr.Client == gr.Client &&
				cr.Executed == gr.Executed && cr.Distinct == gr.Distinct && cr.Instrs == gr.Instrs
			var delta uint64
			for i := 0; same && i < len(cr.Top); i++ {
				x, y := cr.Top[i], gr.Top[i]
				cpc, err1 := strconv.ParseUint(x.PC, 0, 64)
				gpc, err2 := strconv.ParseUint(y.PC, 0, 64)
				if i == 0 {
					delta = cpc - gpc
				}
				same = err1 == nil && err2 == nil && cpc-gpc == delta && x.Instrs == y.Instrs && x.Count == y.Count
			}
			if !same {
				t.Fatalf("C bbcount:\n%s\nGo bbcount:\n%s", c.report, g.report)
			}
			t.Logf("the same blocks, %#x apart", delta)
		})
	}
}

// TestNativeCleanCall: the cleancall example's clean calls, one per
// block executed, see the instructions inscount counts; every call is a
// rel32 call from the code cache (in vmcode, not in the client) to the
// function (the callsite client checks the bytes before its return
// address); and the effective address, register, PC and constant
// arguments are right at a known load; a context argument's register
// change is what the program goes on with.
func TestNativeCleanCall(t *testing.T) {
	argv := []string{kernelsProgram(t), "k_fib", "20"}
	ins := mustRun(t, example(t, "inscount"), nil, argv...)
	cc := mustRun(t, example(t, "cleancall"), nil, argv...)
	var ri, rc struct {
		Instructions, Calls uint64
		RSPSeen             uint64 `json:"rsp_seen"`
		First               string
	}
	if err := json.Unmarshal([]byte(ins.report), &ri); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(cc.report), &rc); err != nil {
		t.Fatal(err)
	}
	if rc.Instructions != ri.Instructions || rc.Calls == 0 || rc.RSPSeen != 1 || rc.First == "0x0" {
		t.Fatalf("cleancall %s; inscount %s", cc.report, ins.report)
	}

	prog := buildC(t, "ea", "testdata/ea.c", "-O2", "-no-pie", fmt.Sprintf("-Wl,-Ttext-segment=%#x", kernels.ExecBase))
	probe := symbol(t, prog, "probe")
	r := mustRun(t, testClient(t, "callsite"), []string{strconv.FormatUint(probe, 16)}, prog)
	// 3+4+...+12, each load's result grown by 1000 by the context
	// call.
	if r.stdout != "10075\n" {
		t.Errorf("ea printed %q, want 10075", r.stdout)
	}
	var cs struct {
		SitesOK, SitesBad, RetLo, RetHi, Site uint64
		EACalls, EAOK, EABad, CtxCalls        uint64
	}
	dec := json.NewDecoder(strings.NewReader(strings.NewReplacer("sites_ok", "SitesOK", "sites_bad", "SitesBad",
		"ret_lo", "RetLo", "ret_hi", "RetHi", "ea_calls", "EACalls", "ea_ok", "EAOK", "ea_bad", "EABad", "ctx_calls", "CtxCalls").Replace(r.report)))
	if err := dec.Decode(&cs); err != nil {
		t.Fatalf("%v: %s", err, r.report)
	}
	lo, hi := r.vmcode[0], r.vmcode[0]+r.vmcode[1]
	if cs.SitesOK == 0 || cs.SitesBad != 0 {
		t.Errorf("%d clean calls by rel32 call, %d otherwise", cs.SitesOK, cs.SitesBad)
	}
	if uintptr(cs.RetLo) < lo || uintptr(cs.RetHi) >= hi || uintptr(cs.Site) < lo || uintptr(cs.Site) >= hi {
		t.Errorf("call sites [%#x, %#x], function %#x, not all in vmcode [%#x, %#x)", cs.RetLo, cs.RetHi, cs.Site, lo, hi)
	}
	// The client's image is a few pages around its function: the calls
	// come from elsewhere, the code cache.
	if cs.RetLo < cs.Site+0x10000 && cs.RetHi+0x1000 > cs.Site {
		t.Errorf("call sites [%#x, %#x] overlap the client's image around %#x", cs.RetLo, cs.RetHi, cs.Site)
	}
	if cs.EACalls != 10 || cs.EAOK != 10 || cs.EABad != 0 || cs.CtxCalls != 10 {
		t.Errorf("effective-address calls: %d, %d right, %d wrong; context calls %d; want 10 right, 10", cs.EACalls, cs.EAOK, cs.EABad, cs.CtxCalls)
	}
	t.Logf("%d rel32 clean calls from [%#x, %#x] to %#x", cs.SitesOK, cs.RetLo, cs.RetHi, cs.Site)
}

// symbol returns the address of the symbol name in the executable path.
func symbol(t *testing.T, path, name string) uint64 {
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
		if s.Name == name {
			return s.Value
		}
	}
	t.Fatalf("no %s in %s", name, path)
	return 0
}

// TestNativeEvents: thread starts and exits, each with its own data slot
// kept from start to exit, system calls before (a getpid skipped, with
// the result the client gave) and after (getppid's result changed), on a
// program with threads; the report written through a pipe when the
// writer is not a file.
func TestNativeEvents(t *testing.T) {
	prog := buildC(t, "threads", "testdata/threads.c", "-O2", "-pthread")
	so := testClient(t, "events")
	for _, buffered := range []bool{false, true} {
		r := runClient(t, so, nil, buffered, prog)
		if r.status != 0 {
			t.Fatalf("status %d: %s", r.status, r.stderr)
		}
		if want := strings.Repeat("4242/4343 ", 4) + "\n"; r.stdout != want {
			t.Errorf("program printed %q, want %q", r.stdout, want)
		}
		e := eventsReport(t, r.report)
		// 4 threads; every call but the skipped getpids and those
		// that do not return (3 exits, an exit_group) seen after;
		// the program, ld.so and the C library loaded, with more
		// perhaps (the vDSO).
		if e.Starts != 4 || e.Exits != 4 || e.DataOK != 4 || e.DataBad != 0 || e.Skipped != 4 ||
			e.Pre-e.Post != 4+4 || e.Blocks != 1 || e.Status != 0 || e.Error != "" ||
			e.Modules < 3 || e.Libc != 1 || e.LD != 1 || e.BadModules != 0 || e.Signals != 0 {
			t.Errorf("buffered %v: %+v", buffered, e)
		}
	}
	// A report bigger than a pipe's buffer, through the pipe.
	r := runClient(t, so, []string{"big"}, true, "/bin/true")
	if r.status != 0 || strings.Count(r.report, strings.Repeat("x", 999)+"\n") != 300 {
		t.Errorf("big report through a pipe: status %d, %d bytes, stderr %s", r.status, len(r.report), r.stderr)
	}
}

// eventsJSON is the report of testdata/events.c.
type eventsJSON struct {
	Starts, Exits, Pre, Post, Skipped, Status int
	DataOK                                    int `json:"data_ok"`
	DataBad                                   int `json:"data_bad"`
	Blocks                                    int `json:"blocks_seen"`
	Error                                     string
	Modules, Unloads, Libc, LD                int
	BadModules                                int `json:"bad_modules"`
	Signals, USR1                             int
	USR1Bad                                   int `json:"usr1_bad"`
}

// eventsReport decodes the events client's report.
func eventsReport(t *testing.T, report string) eventsJSON {
	t.Helper()
	var e eventsJSON
	if err := json.Unmarshal([]byte(report), &e); err != nil {
		t.Fatalf("%v: %q", err, report)
	}
	return e
}

// TestNativeSignals: the signal event sees each SIGUSR1 a program raises,
// with its siginfo, before its handler runs; suppressed, the handler
// does not run.
func TestNativeSignals(t *testing.T) {
	prog := buildC(t, "signals", "testdata/signals.c", "-O2", "-Wall")
	so := testClient(t, "events")
	for _, tc := range []struct {
		mode, out string
	}{{"signals", "handled 3\n"}, {"suppress", "handled 0\n"}} {
		r := mustRun(t, so, []string{tc.mode}, prog)
		e := eventsReport(t, r.report)
		if r.stdout != tc.out || e.USR1 != 3 || e.USR1Bad != 0 {
			t.Errorf("%s: program printed %q, want %q; %+v", tc.mode, r.stdout, tc.out, e)
		}
	}
}

// TestNativeTrace: trace records, of an effective address and of a
// register plus a displacement, reach the client's trace event a buffer
// at a time (4095 records when full, less the room of a run of a block's
// records that did not fit, at most 16), in full: one rsp-8 record per
// block executed (as many as the cleancall example's calls on the same
// program), and the ten loads' addresses, whose sum the program's array
// gives.
func TestNativeTrace(t *testing.T) {
	prog := buildC(t, "ea", "testdata/ea.c", "-O2", "-no-pie", fmt.Sprintf("-Wl,-Ttext-segment=%#x", kernels.ExecBase))
	probe, arr := symbol(t, prog, "probe"), symbol(t, prog, "arr")
	r := mustRun(t, testClient(t, "memtrace"), []string{strconv.FormatUint(probe, 16)}, prog)
	cc := mustRun(t, example(t, "cleancall"), nil, prog)
	var m struct {
		Flushes, Records, Biggest, Tag1, Tag7, Tag7Sum, Bad uint64
	}
	dec := strings.NewReplacer("tag7_sum", "Tag7Sum").Replace(r.report)
	if err := json.Unmarshal([]byte(dec), &m); err != nil {
		t.Fatalf("%v: %q", err, r.report)
	}
	var c struct{ Calls uint64 }
	if err := json.Unmarshal([]byte(cc.report), &c); err != nil {
		t.Fatal(err)
	}
	want := 10*(arr+16) + 8*45 // &arr[i+2] for i < 10
	if r.stdout != "75\n" || m.Tag7 != 10 || m.Tag7Sum != want || m.Tag1 != c.Calls || m.Records != m.Tag1+m.Tag7 ||
		m.Biggest > 4095 || m.Biggest < 4095-16 || m.Flushes < 2 || m.Bad != 0 {
		t.Errorf("memtrace %+v (stdout %q); want 10 loads summing to %d, %d block records", m, r.stdout, want, c.Calls)
	}
	t.Logf("%d records in %d buffers", m.Records, m.Flushes)

	// Every instruction with has_mem set takes a record of its
	// address: none fails the translation.
	all := mustRun(t, testClient(t, "memtrace"), []string{strconv.FormatUint(probe, 16), "all"}, prog)
	var a struct{ Tag1, Tag7, Tag9, Bad uint64 }
	if err := json.Unmarshal([]byte(all.report), &a); err != nil {
		t.Fatalf("%v: %q", err, all.report)
	}
	if all.stdout != "75\n" || a.Tag7 != 10 || a.Tag9 < a.Tag1 || a.Bad != 0 {
		t.Errorf("memtrace all: %+v (stdout %q); want 10 probe records, more memory records than blocks", a, all.stdout)
	}
	t.Logf("all memory operands: %d records", a.Tag9)
}

// TestNativeDependency: a client's events and cells may lie in a
// library it needs, loaded privately with it (into vmcode too): the
// client counts what inscount does.
func TestNativeDependency(t *testing.T) {
	dep := buildC(t, "libclientdep.so", "testdata/dep.c", freestanding...)
	so := buildC(t, "depclient.so", "testdata/depclient.c", append(append([]string{}, freestanding...),
		"-L"+filepath.Dir(dep), "-Wl,-rpath,$ORIGIN", "-Wl,--no-as-needed", "-lclientdep")...)
	argv := []string{kernelsProgram(t), "k_fib", "20"}
	c := mustRun(t, so, nil, argv...)
	g := mustRun(t, "inscount", nil, argv...)
	if c.report != g.report {
		t.Errorf("client with a dependency %q, inscount %q", c.report, g.report)
	}
}

// TestNativeLibc: a client linked with the C library (the host's copy)
// runs, with malloc, snprintf and write in its events, and counts what
// inscount counts.
func TestNativeLibc(t *testing.T) {
	so := buildC(t, "libcclient.so", "testdata/libcclient.c", "-O2", "-Wall", "-fPIC", "-shared", "-mgeneral-regs-only")
	prog := buildC(t, "threads", "testdata/threads.c", "-O2", "-pthread")
	r := mustRun(t, so, nil, prog)
	g := mustRun(t, "inscount", nil, prog)
	var lr, gr struct {
		Client       string
		Instructions uint64
		Threads      int
	}
	if err := json.Unmarshal([]byte(r.report), &lr); err != nil {
		t.Fatalf("%v: %q (stderr %s)", err, r.report, r.stderr)
	}
	if err := json.Unmarshal([]byte(g.report), &gr); err != nil {
		t.Fatal(err)
	}
	// Threads run in a different order in the two runs (their
	// scheduler waits differ): the counts agree within a few percent.
	if lr.Client != "libc" || lr.Threads != 4 || lr.Instructions == 0 ||
		float64(lr.Instructions) < 0.9*float64(gr.Instructions) || float64(lr.Instructions) > 1.1*float64(gr.Instructions) {
		t.Errorf("libc client %+v, Go inscount %+v", lr, gr)
	}
}

// TestNativeErrors: a client that cannot run, or that inserts what it
// may not, fails the run with a message saying why.
func TestNativeErrors(t *testing.T) {
	events := testClient(t, "events")
	noinit := buildC(t, "noinit.so", "testdata/noinit.c", "-O2", "-fPIC", "-shared")
	for _, tc := range []struct {
		name   string
		client string
		args   []string
		want   string
	}{
		{"refuse", events, []string{"refuse"}, "reachvm_client_init returned 7: the client refused to run"},
		{"bad-arg", events, []string{"what"}, "returned 8"},
		{"bad-event", events, []string{"bad-event"}, "its block event, 0x1000, is not in its image"},
		{"bad-cell", events, []string{"bad-cell"}, "the cell 0x1000 is not an aligned word of the client's image"},
		{"bad-kind", events, []string{"bad-kind"}, "an insertion of kind 9"},
		{"full", events, []string{"full"}, "more insertions than the block has room for"},
		{"no-init", noinit, nil, `is not a reachvm client: privload: ` + noinit + `: no exported symbol "reachvm_client_init"`},
		{"missing", filepath.Join(t.TempDir(), "none.so"), nil, "no such file or directory"},
		{"program", "/bin/true", nil, "a program, not a shared object"},
		{"sample", "nonesuch", nil, `no sample client "nonesuch"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runClient(t, tc.client, tc.args, false, "/bin/true")
			if r.status != childFailed && r.status != childReportFailed {
				t.Fatalf("status %d, want a failure; stderr %s", r.status, r.stderr)
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("stderr %q, want %q in it", r.stderr, tc.want)
			}
		})
	}
	if _, err := New("./x.so", nil); err == nil || !strings.Contains(err.Error(), "needs the VMM") {
		t.Errorf("New of a native client without a VMM: %v", err)
	}
}

func init() {
	// opcount-go is the Go twin of examples/cpp/opcount.cc, the
	// reference TestNativeCPlusPlus compares it with: a Shared counter
	// per first byte, one add per distinct byte of a block.
	factories["opcount-go"] = func(args []string) (*Tool, error) {
		var cells [256]*jit.Counter
		for i := range cells {
			cells[i] = jit.NewCounter(jit.Shared)
		}
		return &Tool{
			Name: "opcount-go",
			Client: &jit.Client{Block: func(b *jit.Block) {
				var n [256]int64
				for i := range b.Len() {
					n[b.Instr(i).Bytes()[0]]++
				}
				for c, k := range n {
					if k != 0 {
						b.AddCounter(0, cells[c], k)
					}
				}
			}},
			Report: func(w io.Writer) error {
				for c, ctr := range cells {
					if v := ctr.Value(); v != 0 {
						fmt.Fprintf(w, "0x%02x %d\n", c, v)
					}
				}
				return nil
			},
		}, nil
	}
}

// TestNativeCPlusPlus: a C++ client (examples/cpp/opcount.cc: standard
// containers and strings in its events, the C++ runtime the host's)
// counts, per first instruction byte, what a Go client of the jit API
// counts, and in all what inscount does; it throws and catches
// exceptions in its own code (RV_CXX_EXCEPTIONS).
func TestNativeCPlusPlus(t *testing.T) {
	if _, err := exec.LookPath("g++"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("g++ is missing")
		}
		t.Skip("g++ is missing")
	}
	so := buildC(t, "opcount.so", "../examples/cpp/opcount.cc", "-O2", "-Wall", "-fPIC", "-shared",
		"-mgeneral-regs-only")
	argv := []string{kernelsProgram(t), "k_sort", "4"}
	c := mustRun(t, so, nil, argv...)
	g := mustRun(t, "opcount-go", nil, argv...)
	ins := mustRun(t, "inscount", nil, argv...)
	var cr struct {
		Client       string
		Instructions uint64
		Top          []struct {
			Byte  string
			Count uint64
		}
	}
	if err := json.Unmarshal([]byte(c.report), &cr); err != nil {
		t.Fatalf("%v: %q (stderr %s)", err, c.report, c.stderr)
	}
	var ir struct{ Instructions uint64 }
	if err := json.Unmarshal([]byte(ins.report), &ir); err != nil {
		t.Fatal(err)
	}
	if cr.Client != "opcount" || cr.Instructions != ir.Instructions || len(cr.Top) == 0 {
		t.Fatalf("C++ opcount %s; inscount %s", c.report, ins.report)
	}
	goCounts := map[string]uint64{}
	for _, l := range strings.Split(strings.TrimSpace(g.report), "\n") {
		var b string
		var n uint64
		if _, err := fmt.Sscanf(l, "%s %d", &b, &n); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		goCounts[b] = n
	}
	for _, e := range cr.Top {
		if goCounts[e.Byte] != e.Count {
			t.Errorf("byte %s: C++ %d, Go %d", e.Byte, e.Count, goCounts[e.Byte])
		}
	}

	// Exceptions thrown and caught in the client: std::stoul's of a bad
	// argument makes init refuse; a good one is taken.
	if r := mustRun(t, so, []string{"top=3"}, argv...); strings.Count(r.report, `"byte"`) != 3 {
		t.Errorf("top=3: %s", r.report)
	}
	r := runClient(t, so, []string{"top=many"}, false, argv...)
	if r.status != childFailed || !strings.Contains(r.stderr, "opcount: bad argument top=many (stoul); takes top=N") ||
		!strings.Contains(r.stderr, "returned 2") {
		t.Errorf("top=many: status %d, stderr %q", r.status, r.stderr)
	}
}

// TestNativePrintf: rv_dprintf formats as the C library's printf does,
// for each conversion it has, at the limits of each integer type, and
// past its buffer's size.
func TestNativePrintf(t *testing.T) {
	prog := buildC(t, "printf", "testdata/printf.c", "-O2", "-Wall", "-Wno-format")
	out, err := exec.Command(prog).Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != 24 {
		t.Fatalf("%d lines, want 24: %q", len(lines), out)
	}
	for i := 0; i < len(lines); i += 2 {
		if lines[i] != lines[i+1] {
			t.Errorf("printf %q, rv_dprintf %q", lines[i], lines[i+1])
		}
	}
}

// TestNativeOpcodes: the C opcodes (a counter per mnemonic in its .bss,
// the mnemonics reachvm gives it) reports exactly what the Go opcodes
// does.
func TestNativeOpcodes(t *testing.T) {
	so := example(t, "opcodes")
	for _, argv := range countPrograms(t) {
		t.Run(filepath.Base(argv[0])+"-"+strings.Join(argv[1:], "-"), func(t *testing.T) {
			c := mustRun(t, so, nil, argv...)
			g := mustRun(t, "opcodes", nil, argv...)
			if c.report != g.report {
				t.Fatalf("C opcodes:\n%s\nGo opcodes:\n%s", c.report, g.report)
			}
		})
	}
}

// TestNativeMemtrace: the C memtrace (a record per memory reference,
// rv_insert_record_ref, encoded in its trace event) reports what the Go
// memtrace reports on memops, and its file reads back to as many
// accesses.
func TestNativeMemtrace(t *testing.T) {
	so := example(t, "memtrace")
	prog := buildTestC(t, "memops", nil, "memops.c")
	dir := t.TempDir()
	addrs := filepath.Join(dir, "addrs")
	cFile, goFile := filepath.Join(dir, "c.bin"), filepath.Join(dir, "go.bin")
	c := mustRun(t, so, []string{"file=" + cFile}, prog, addrs)
	g := mustRun(t, "memtrace", []string{"file=" + goFile}, prog, addrs)
	// The files' names differ, and so may their sizes: each run lays
	// the program out anew, and an address's distance from the one
	// before it, which the file stores, takes more or fewer bytes.
	fileBytes := regexp.MustCompile(`"file_bytes":[1-9][0-9]*`)
	strip := func(report, file string) string {
		return fileBytes.ReplaceAllString(strings.Replace(report, `"file":"`+file+`",`, "", 1), `"file_bytes":N`)
	}
	if strip(c.report, cFile) != strip(g.report, goFile) {
		t.Fatalf("C memtrace:\n%s\nGo memtrace:\n%s", c.report, g.report)
	}
	var r struct{ Accesses uint64 }
	if err := json.Unmarshal([]byte(c.report), &r); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(cFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var n uint64
	if err := ReadMemtrace(f, func(MemAccess) error { n++; return nil }); err != nil || n != r.Accesses || n == 0 {
		t.Errorf("the C memtrace's file reads back to %d accesses (%v); its report says %d", n, err, r.Accesses)
	}
}

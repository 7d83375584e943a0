//go:build linux && amd64

package clients

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"

	"golang.org/x/sys/cpu"

	kern "github.com/reachvm/reachvm/jit/kernels"
)

// TestInscountLackeyKernels: on every kernel of jit/kernels, built as an
// ET_EXEC freestanding program (no libc, so no start-up that depends on
// the processor valgrind shows) at its test size, inscount and bbcount
// equal lackey's guest instruction count exactly.
func TestInscountLackeyKernels(t *testing.T) {
	needValgrind(t)
	prog, err := kern.Program("kernels", kern.Exec)
	if errors.Is(err, kern.ErrNoCompiler) {
		needGCC(t)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range kern.All {
		t.Run(k.Name, func(t *testing.T) {
			if k.AVX2 && !cpu.X86.HasAVX2 {
				t.Skip("no AVX2")
			}
			t.Parallel()
			n := strconv.FormatInt(k.Test, 10)
			want, wantOut := lackey(t, prog, k.Name, n)
			r, out := runRef(t, nil, prog, k.Name, n)
			if out != wantOut || r.Status != 0 {
				t.Errorf("output %q, status %d; under valgrind %q, 0", out, r.Status, wantOut)
			}
			if r.Inscount != want || r.Reps != 0 {
				t.Errorf("inscount %d (%d rep string executions), lackey %d", r.Inscount, r.Reps, want)
			}
		})
	}
}

// TestInscountLackeyRep: lackey counts a rep-prefixed string instruction
// once per iteration, and once more for the check that ends it when the
// count ran out (valgrind translates it as a loop of one iteration that
// jumps back to itself while rcx is not zero); inscount, like the
// processor's retired-instruction count, once per execution. rep.c's
// five executions have known counts:
//
//	rep movsb, rcx 100         100 iterations + the last check: 101
//	rep stosq, rcx 0           the check alone:                   1
//	repe cmpsb, differs at 21  21 iterations, the 21st ends it:  21
//	repe cmpsb, 30 equal       30 iterations + the last check:   31
//	repne scasb, found at 10   10 iterations, the 10th ends it:  10
//
// so lackey counts 164 where inscount counts 5: lackey's total is
// inscount's + 159, exactly; exp-bbv, which counts each rep instruction
// once in its total and reports lackey's count of them apart, agrees
// with both.
func TestInscountLackeyRep(t *testing.T) {
	needValgrind(t)
	prog := gccBuild(t, "rep.c", "-O2", "-ffreestanding", "-nostdlib", "-static", "-fno-stack-protector",
		fmt.Sprintf("-Wl,-Ttext-segment=%#x", kern.ExecBase))
	const reps, lackeyReps = 5, 101 + 1 + 21 + 31 + 10
	want, _ := lackey(t, prog)
	r, _ := runRef(t, nil, prog)
	if r.Status != 0 {
		t.Fatalf("rep.c exited %d: a rep instruction's result is wrong", r.Status)
	}
	if r.Reps != reps || r.Inscount+lackeyReps-reps != want {
		t.Errorf("inscount %d with %d rep executions; lackey %d, want inscount + %d", r.Inscount, r.Reps, want, lackeyReps-reps)
	}
	b := bbv(t, prog)
	if b[1].Instrs != r.Inscount || b[1].Reps != lackeyReps {
		t.Errorf("exp-bbv: %d instructions, %d rep iterations; want %d, %d", b[1].Instrs, b[1].Reps, r.Inscount, lackeyReps)
	}
}

// threadsProg builds clients/testdata/refthreads.c, dynamically linked
// against the C library, with -pthread, and returns its path and the
// range of its function work.
func threadsProg(t *testing.T) (string, string) {
	prog := gccBuild(t, "refthreads.c", append([]string{"-pthread"}, execFlags...)...)
	return prog, symbolRange(t, prog, "work")
}

// TestInscountLackeyDynamic runs a dynamically linked gcc program doing
// work(N) eight times (refthreads.c serial) at two sizes. Its start-up
// differs between reachvm and valgrind for reasons that have nothing to
// do with counting (see TestInscountLackeyStartup), and so do their
// totals; but that start-up does not depend on N, and the difference
// between the two sizes is the same under both, exactly, and is all in
// work.
func TestInscountLackeyDynamic(t *testing.T) {
	needValgrind(t)
	prog, work := threadsProg(t)
	env := []string{"REACHVM_REF_RANGE=" + work}
	l1, _ := lackey(t, prog, "serial", "1000")
	l2, _ := lackey(t, prog, "serial", "3000")
	r1, _ := runRef(t, env, prog, "serial", "1000")
	r2, _ := runRef(t, env, prog, "serial", "3000")
	if r2.Inscount-r1.Inscount != l2-l1 || r2.Range-r1.Range != l2-l1 {
		t.Errorf("from N 1000 to 3000: inscount %d to %d (+%d, +%d in work), lackey %d to %d (+%d)",
			r1.Inscount, r2.Inscount, r2.Inscount-r1.Inscount, r2.Range-r1.Range, l1, l2, l2-l1)
	}
	t.Logf("N 1000: inscount %d, lackey %d; N 3000: inscount %d, lackey %d", r1.Inscount, l1, r2.Inscount, l2)
}

// TestInscountLackeyStartup runs real programs, /bin/true and ls /, and
// reports how inscount compares with lackey (TestInscountLackeyDynamic
// shows the differences lie in the start-up, not in the counting). The
// programs' own counts agree between the sample clients and the test's
// counters (runRef), and they are the same at every run. The start-up
// of ld.so and the C library differs in valgrind, which:
//   - loads its preload library (vgpreload_core) into every program:
//     one more object for ld.so to map, relocate and search;
//   - shows the program a processor of its own through cpuid (an Intel
//     model, without AVX-512): glibc's cpu-features and cache-info code
//     take other paths, and its IFUNCs pick other string functions
//     (AVX2 ones, not EVEX);
//   - gives the program no vDSO (no AT_SYSINFO_EHDR), and other auxv;
//   - replaces some of ld.so's string functions with its own;
//   - counts rep string instructions per iteration (TestInscountLackeyRep).
//
// None of these is a count inscount gets wrong, and none can be undone
// from outside valgrind, so the totals are logged, not compared.
func TestInscountLackeyStartup(t *testing.T) {
	needValgrind(t)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"/bin/true", nil},
		{"/bin/ls", []string{"/"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, wantOut := lackey(t, tc.name, tc.args...)
			r, out := runRef(t, nil, tc.name, tc.args...)
			if out != wantOut {
				t.Errorf("output %q, under valgrind %q", out, wantOut)
			}
			// Two runs need not count alike: the stack and the heap
			// lie elsewhere each time (ASLR, and vmm's random
			// offset), and the C library's string functions take a
			// few instructions more or less with the alignment (ls
			// varied by 4 in 354,000). The deterministic program of
			// TestThreadsDeterministic is where equal runs are
			// asserted.
			nv, _ := runRef(t, []string{"REACHVM_REF_NOVDSO=1"}, tc.name, tc.args...)
			again, _ := runRef(t, []string{"REACHVM_REF_NOVDSO=1"}, tc.name, tc.args...)
			if d := int64(again.Inscount) - int64(nv.Inscount); d > 1000 || d < -1000 {
				t.Errorf("inscount %d, then %d: more apart than layouts explain", nv.Inscount, again.Inscount)
			}
			b := bbv(t, tc.name, tc.args...)
			t.Logf("inscount %d (%d without the vDSO; %d rep executions); lackey %d; exp-bbv %d with %d rep iterations",
				r.Inscount, nv.Inscount, r.Reps, want, b[1].Instrs, b[1].Reps)
		})
	}
}

// TestThreadsMerge: eight POSIX threads each running work(N) count in
// work, each, an eighth of what the main thread counts there doing all
// eight itself, and together exactly as much; the main thread of the
// threaded run counts nothing there; and every thread's own counts sum
// to the total (runRef).
func TestThreadsMerge(t *testing.T) {
	prog, work := threadsProg(t)
	env := []string{"REACHVM_REF_RANGE=" + work}
	serial, sout := runRef(t, env, prog, "serial", "5000")
	threaded, tout := runRef(t, env, prog, "pthread", "5000")
	if sout != tout || serial.Status != 0 || threaded.Status != 0 {
		t.Fatalf("serial: %q, status %d; threaded: %q, status %d", sout, serial.Status, tout, threaded.Status)
	}
	if len(serial.Threads) != 1 || serial.Range == 0 || serial.Range%8 != 0 {
		t.Fatalf("serial run: %+v", serial)
	}
	per := serial.Range / 8
	var workers []uint64
	var sum uint64
	for _, th := range threaded.Threads {
		sum += th.Range
		if th.Range != 0 {
			workers = append(workers, th.Range)
		}
	}
	if len(threaded.Threads) != 9 || len(workers) != 8 || slices.Min(workers) < per || sum < serial.Range {
		t.Fatalf("threads' counts in work %v (of %d threads), sum %d; want 8 of %d, sum %d",
			workers, len(threaded.Threads), sum, per, serial.Range)
	}
	if sum != serial.Range {
		t.Errorf("threads' counts in work %v, sum %d; want 8 of %d, sum %d: %d instructions counted twice; blocks %v, serially %v",
			workers, sum, per, serial.Range, sum-serial.Range, threaded.Blocks, serial.Blocks)
	}
}

// TestThreadsDeterministic runs refthreads.c's clone mode, eight threads
// whose waits have no timing-dependent loop, five times: inscount is the
// same each time; each thread counts the same; and the eight threads
// together count what exp-bbv counts in them.
func TestThreadsDeterministic(t *testing.T) {
	prog, work := threadsProg(t)
	env := []string{"REACHVM_REF_RANGE=" + work}
	var first refResult
	for i := range 5 {
		r, out := runRef(t, env, prog, "clone", "5000")
		if r.Status != 0 || len(r.Threads) != 9 {
			t.Fatalf("run %d: status %d, %d threads, output %q", i, r.Status, len(r.Threads), out)
		}
		if i == 0 {
			first = r
			continue
		}
		if r.Inscount != first.Inscount {
			t.Errorf("run %d: inscount %d, run 0: %d", i, r.Inscount, first.Inscount)
		}
	}
	// The main thread ends last, after waiting for each of the others.
	var children []uint64
	for _, th := range first.Threads[:8] {
		children = append(children, th.All)
	}
	if slices.Min(children) != slices.Max(children) {
		t.Errorf("the eight threads count %v: not the same", children)
	}
	if testing.Short() {
		return
	}
	needValgrind(t)
	b := bbv(t, prog, "clone", "5000")
	var bsum uint64
	for slot, th := range b {
		if slot != 1 {
			bsum += th.Instrs
		}
	}
	if 8*children[0] != bsum {
		t.Errorf("the eight threads count %d each, %d together; exp-bbv counts %d in them (%+v)", children[0], 8*children[0], bsum, b)
	}
}

// TestSignalsCount: a thread that takes a signal every 200
// microseconds (refthreads.c signals; valgrind, like DynamoRIO, delivers
// one only between blocks) still counts exactly the instructions of
// work it ran without them, and its counters agree.
func TestSignalsCount(t *testing.T) {
	prog, work := threadsProg(t)
	env := []string{"REACHVM_REF_RANGE=" + work}
	const n = "2000000"
	serial, sout := runRef(t, env, prog, "serial", n)
	sig, out := runRefRaw(t, env, prog, "signals", n, "200")
	var result string
	var signals int
	if _, err := fmt.Sscanf(out, "%s\n%d signals", &result, &signals); err != nil || result+"\n" != sout || sig.Status != 0 || signals == 0 {
		t.Fatalf("output %q, status %d; want %q and a count of signals (%v)", out, sig.Status, sout, err)
	}
	err := sig.agree()
	if sig.Range != serial.Range || err != nil {
		t.Errorf("with %d signals, work counts %d instructions, without %d; %v", signals, sig.Range, serial.Range, err)
	}
}

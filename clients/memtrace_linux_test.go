package clients

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reachvm/reachvm/jit/kernels"
)

// TestMemtrace runs memops under memtrace and reads its file back: the
// file's accesses are the report's, and those of memops' arrays are the
// ones its source makes (1000 loads of src and 1000 stores to dst, a rep
// movsb's 4096 one-byte loads and stores, 100 read-and-write adds), each
// at its address.
func TestMemtrace(t *testing.T) {
	prog := buildTestC(t, "memops", nil, "memops.c")
	dir := t.TempDir()
	trace, addrs := filepath.Join(dir, "trace"), filepath.Join(dir, "addrs")
	tool, err := New("memtrace", []string{"file=" + trace})
	if err != nil {
		t.Fatal(err)
	}
	report := runWithTool(t, tool, nil, prog, addrs)
	var r struct{ Loads, Stores, Accesses, Records uint64 }
	if err := json.Unmarshal(report, &r); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(addrs)
	if err != nil {
		t.Fatal(err)
	}
	var src, dst uintptr
	if _, err := fmt.Sscanf(string(b), "%v %v", &src, &dst); err != nil {
		t.Fatalf("memops wrote %q: %v", b, err)
	}
	f, err := os.Open(trace)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var loads, stores, n uint64
	var srcLoads, dstStores, srcRMW, bytesIn, bytesOut uint64
	in := func(a MemAccess, base uintptr) bool { return a.Addr >= base && a.Addr < base+8000 }
	err = ReadMemtrace(f, func(a MemAccess) error {
		n++
		if a.Read {
			loads++
		}
		if a.Write {
			stores++
		}
		switch {
		case a.Read && a.Write && a.Addr == src && a.Size == 8:
			srcRMW++
		case a.Size == 8 && a.Read && in(a, src):
			srcLoads++
		case a.Size == 8 && a.Write && in(a, dst):
			dstStores++
		case a.Size == 1 && a.Read && in(a, src):
			bytesIn++
		case a.Size == 1 && a.Write && in(a, dst):
			bytesOut++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != r.Accesses || loads != r.Loads || stores != r.Stores {
		t.Errorf("the file holds %d accesses (%d loads, %d stores), the report says %d (%d, %d)", n, loads, stores, r.Accesses, r.Loads, r.Stores)
	}
	if got, want := fmt.Sprint(srcLoads, dstStores, bytesIn, bytesOut, srcRMW), "1000 1000 4096 4096 100"; got != want {
		t.Errorf("memops' accesses (src loads, dst stores, rep movsb's byte loads and stores, adds): %s, want %s", got, want)
	}
	t.Logf("%d accesses in %d records, %d bytes", n, r.Records, fileSize(t, trace))
}

func fileSize(t *testing.T, path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// FuzzReadMemtrace: any bytes give accesses or an error, never a panic
// or an access of an undefined site.
func FuzzReadMemtrace(f *testing.F) {
	// A chunk of thread 7: site 1 defined (pc 0x1000, 8 bytes, read and
	// write), then two accesses at it.
	var payload []byte
	for _, v := range []uint64{1<<1 | 1, 0x1000, 8} {
		payload = appendUvarint(payload, v)
	}
	payload = append(payload, 3)
	for _, v := range []uint64{1 << 1, zigzag(0x7ffc_0000_0010), 1 << 1, zigzag(^uint64(7))} {
		payload = appendUvarint(payload, v)
	}
	ok := appendUvarint([]byte(MemtraceMagic+"T"), 7)
	ok = binary.LittleEndian.AppendUint32(ok, uint32(len(payload)))
	ok = append(ok, payload...)
	f.Add(ok)
	f.Add(ok[:len(ok)-1])
	f.Add(append(ok, 'T', 0))
	f.Add([]byte(MemtraceMagic + "T\x03\xff\xff\xff\xff"))
	f.Add([]byte("RVMTRC01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n := 0
		_ = ReadMemtrace(bytes.NewReader(b), func(a MemAccess) error {
			if n++; n > 1<<20 {
				return fmt.Errorf("too many")
			}
			return nil
		})
	})
}

// TestMemtraceLackey: memtrace's loads and stores equal valgrind lackey's
// (--trace-mem=yes: L a load, S a store, M a read-and-write, which is
// both) for the work of memops, its 1000 loads and stores, a rep movsb's
// 4096 of each and 100 read-and-write adds, together with the loop code
// around them: the counts of a run of it twice less those of a run once,
// so that the start-up (ld.so, which runs differently under valgrind)
// cancels out.
func TestMemtraceLackey(t *testing.T) {
	if _, err := exec.LookPath("valgrind"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("valgrind is missing")
		}
		t.Skip("valgrind is missing")
	}
	prog := buildTestC(t, "memops", nil, "memops.c")
	addrs := filepath.Join(t.TempDir(), "addrs")
	ours := func(reps string) (uint64, uint64) {
		tool, err := New("memtrace", []string{"drop"})
		if err != nil {
			t.Fatal(err)
		}
		var r struct{ Loads, Stores uint64 }
		if err := json.Unmarshal(runWithTool(t, tool, nil, prog, addrs, reps), &r); err != nil {
			t.Fatal(err)
		}
		return r.Loads, r.Stores
	}
	lackey := func(reps string) (uint64, uint64) {
		log := filepath.Join(t.TempDir(), "lackey")
		cmd := exec.Command("valgrind", "--tool=lackey", "--trace-mem=yes", "--log-file="+log, prog, addrs, reps)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("valgrind: %v\n%s", err, out)
		}
		b, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		var loads, stores uint64
		for _, l := range strings.Split(string(b), "\n") {
			switch {
			case strings.HasPrefix(l, " L "):
				loads++
			case strings.HasPrefix(l, " S "):
				stores++
			case strings.HasPrefix(l, " M "):
				loads++
				stores++
			}
		}
		return loads, stores
	}
	l1, s1 := ours("1")
	l2, s2 := ours("2")
	v1, w1 := lackey("1")
	v2, w2 := lackey("2")
	if l2-l1 != v2-v1 || s2-s1 != w2-w1 {
		t.Errorf("a repetition of memops' work: memtrace %d loads, %d stores; lackey %d, %d", l2-l1, s2-s1, v2-v1, w2-w1)
	}
	t.Logf("one repetition: %d loads, %d stores (lackey %d, %d); whole runs: memtrace %d, %d; lackey %d, %d", l2-l1, s2-s1, v2-v1, w2-w1, l1, s1, v1, w1)
}

// TestMemtraceFault: memfault's block of three references, whose second
// faults on every other pass into a handler that longjmps out: the trace
// holds the first reference's and the faulting one's accesses on every
// pass (a reference's record is made before it, as valgrind's are) and
// the third's only on the passes that got to it. The block's records
// share one bounds check, so this is what keeps records reserved for
// references that did not run out of the trace.
func TestMemtraceFault(t *testing.T) {
	prog := buildTestC(t, "memfault", []string{"-no-pie", fmt.Sprintf("-Wl,-Ttext-segment=%#x", kernels.ExecBase)}, "memfault.c")
	pcs := map[uintptr]string{}
	for _, s := range []string{"mf_store0", "mf_load", "mf_store1"} {
		pcs[uintptr(symbol(t, prog, s))] = s
	}
	trace := filepath.Join(t.TempDir(), "trace")
	tool, err := New("memtrace", []string{"file=" + trace})
	if err != nil {
		t.Fatal(err)
	}
	const passes = 10000 // several buffers' worth, so that flushes fall among the faults
	runWithTool(t, tool, nil, prog, fmt.Sprint(passes))
	f, err := os.Open(trace)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := map[string]int{}
	if err := ReadMemtrace(f, func(a MemAccess) error {
		if s, ok := pcs[a.PC]; ok {
			got[s]++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"mf_store0": passes, "mf_load": passes, "mf_store1": passes / 2}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("accesses by instruction %v, want %v", got, want)
	}
}

// appendUvarint appends v to b as the file's uvarint.
func appendUvarint(b []byte, v uint64) []byte {
	var p [memMaxVarint + 8]byte
	return append(b, p[:putUvarint(p[:], v)]...)
}

package clients

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestMemtrace runs memops under memtrace and reads its file back: the
// file's accesses are the report's, and those of memops' arrays are the
// ones its source makes (1000 loads of src and 1000 stores to dst, a rep
// movsb's 4096 one-byte loads and stores, 100 read-and-write adds), each
// at its address.
func TestMemtrace(t *testing.T) {
	prog := gccBuild(t, "memops", nil, "memops.c")
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
	var ok bytes.Buffer
	ok.WriteString(MemtraceMagic)
	ok.Write([]byte{'T', 7, 9, 3, 0x80, 0x20, 8, 3, 2, 0x10, 0})
	f.Add(ok.Bytes())
	f.Add([]byte(MemtraceMagic + "T\x01\x05\x05\x10\x04\x04\x04\x80"))
	f.Add([]byte("RVMTRC00"))
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

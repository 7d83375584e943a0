package aspacem

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/reachvm/reachvm/internal/procmaps"
	"github.com/reachvm/reachvm/mem"
)

func TestWriteMaps(t *testing.T) {
	f := newFakeLinux()
	f.regions = []mem.Region{
		{Start: 0x400000, End: 0x401000, State: mem.StateCommitted, Type: mem.TypeMapped, Prot: mem.ProtRX, Name: "/bin/app", Dev: 0xfe00, Inode: 247026},
		{Start: 0x7ffd_0000_0000, End: 0x7ffd_0002_1000, State: mem.StateCommitted, Type: mem.TypePrivate, Prot: mem.ProtRW, Name: "[stack]"},
	}
	m, err := Load(f)
	if err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, m, Segment{Start: 0x3f00_0000, End: 0x3f01_0000, Kind: KindReservation, Owner: "vmcode"})
	mustUpdate(t, m, Segment{Start: 0x3f00_0000, End: 0x3f00_2000, Kind: KindShared, Prot: mem.ProtRX, Name: "reachvm-dual", Owner: "fcache"})
	mustUpdate(t, m, Segment{Start: 0x3f00_4000, End: 0x3f00_5000, Kind: KindFile, Prot: mem.ProtRead, Name: "/lib/lib demo.so", Offset: 0x3000, Owner: "privlib libdemo.so"})
	mustUpdate(t, m, Segment{Start: 0x5000_0000, End: 0x5000_1000, Kind: KindAnon, Prot: mem.ProtRW})
	var buf bytes.Buffer
	if err := m.WriteMaps(&buf, 0, ^uintptr(0)); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"00400000-00401000 r-xp 00000000 fe:00 247026                             /bin/app\n" +
		"3f000000-3f002000 r-xs 00000000 00:00 0                                  reachvm-dual [fcache]\n" +
		"3f002000-3f004000 ---p 00000000 00:00 0                                  [vmcode]\n" +
		"3f004000-3f005000 r--p 00003000 00:00 0                                  /lib/lib demo.so [privlib libdemo.so]\n" +
		"3f005000-3f010000 ---p 00000000 00:00 0                                  [vmcode]\n" +
		"50000000-50001000 rw-p 00000000 00:00 0                                  [anon]\n" +
		"7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]\n"
	if buf.String() != want {
		t.Fatalf("WriteMaps:\n%s\nwant:\n%s", buf.String(), want)
	}
	// A window clips lines (and advances offsets).
	buf.Reset()
	if err := m.WriteMaps(&buf, 0x3f00_4000+0x1000-0x1000, 0x3f00_6000); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(buf.String(), "3f004000-3f005000 r--p 00003000") || strings.Count(buf.String(), "\n") != 2 {
		t.Fatalf("clipped WriteMaps:\n%s", buf.String())
	}
	// The dump parses as /proc/self/maps and round-trips every field.
	buf.Reset()
	m.WriteMaps(&buf, 0, ^uintptr(0))
	var lines int
	err = procmaps.Parse(buf.Bytes(), func(e *procmaps.Entry) bool {
		s, _ := m.Lookup(e.Start)
		name := s.Name
		if s.Kind.Owned() {
			annot := s.Owner
			if annot == "" {
				annot = s.Kind.String()
			}
			name = strings.TrimPrefix(name+" ["+annot+"]", " ")
		}
		if e.End != s.End || mem.Prot(e.Prot) != s.Prot || e.Shared != s.Shared || e.Offset != s.Offset ||
			e.Dev() != s.Dev || e.Inode != s.Inode || string(e.Name) != name {
			t.Errorf("line %d: %+v does not round-trip %v", lines, e, s)
		}
		lines++
		return true
	})
	if err != nil || lines != 7 {
		t.Fatalf("Parse: %v, %d lines", err, lines)
	}
	// Writer errors are returned.
	if err := m.WriteMaps(failWriter{}, 0, ^uintptr(0)); err == nil {
		t.Fatal("WriteMaps ignored a write error")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// TestWriteMapsMatchesKernel checks the line format against the kernel's
// own: the lines of /proc/self/maps, loaded as foreign segments, print
// back byte for byte.
func TestWriteMapsMatchesKernel(t *testing.T) {
	data, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Skip("no /proc/self/maps:", err)
	}
	cfg := Config{Lo: 0, Hi: 0x8000_0000_0000, PageSize: 0x1000, Granularity: 0x1000}
	m := mustNew(t, cfg)
	var regions []mem.Region
	err = procmaps.Parse(data, func(e *procmaps.Entry) bool {
		if e.End > cfg.Hi { // [vsyscall]
			return true
		}
		regions = append(regions, mem.Region{Start: e.Start, End: e.End, State: mem.StateCommitted, Prot: mem.Prot(e.Prot),
			Shared: e.Shared, Name: string(e.Name), Offset: e.Offset, Dev: e.Dev(), Inode: e.Inode})
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range regions {
		mustUpdate(t, m, Segment{Start: r.Start, End: r.End, Kind: KindForeign, Prot: r.Prot, Shared: r.Shared, Name: r.Name, Offset: r.Offset, Dev: r.Dev, Inode: r.Inode})
	}
	var got bytes.Buffer
	m.WriteMaps(&got, cfg.Lo, cfg.Hi)
	// Adjacent VMAs the kernel kept apart (different anon_vma, say) are
	// one segment in the map: compare the lines that are the same range.
	same := 0
	for _, l := range strings.Split(strings.TrimSuffix(got.String(), "\n"), "\n") {
		k := kernelLine(data, l[:strings.IndexByte(l, ' ')])
		if k == "" {
			continue
		}
		if l != k {
			t.Errorf("line differs:\n got %q\nkernel %q", l, k)
		}
		same++
	}
	if same < len(regions)/2 {
		t.Fatalf("only %d of %d lines comparable", same, len(regions))
	}
}

// kernelLine returns the line of data for exactly the range rng
// ("start-end").
func kernelLine(data []byte, rng string) string {
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, rng+" ") {
			return l
		}
	}
	return ""
}

func ExampleMap_Advise() {
	// A Windows-like address space: 64 KiB allocation granularity.
	m, _ := New(Config{Lo: 0x10000, Hi: 0x8000_0000, PageSize: 0x1000, Granularity: 0x10000, FoldCase: true, Rules: mem.RulesWindows})
	// The application's image at 0x40000000, as the OS loaded it.
	m.Update(Segment{Start: 0x4000_0000, End: 0x4010_0000, Kind: KindForeign, Prot: mem.ProtRX, Name: `C:\app\app.exe`})

	// 1 MiB of code cache as near the image as possible, every byte
	// within 2 GiB of it: it goes right below, aligned to 64 KiB.
	p, err := m.Advise(0x10_0000, 0, 0x4000_0000, 1<<31)
	fmt.Printf("%#x %v\n", p, err)
	m.Update(Segment{Start: p, End: p + 0x10_0000, Kind: KindReservation, Owner: "vmcode"})

	// The next one is as near below as above (its farther end 2 MiB
	// away either way): the tie goes to the lower address.
	p, err = m.Advise(0x10_0000, 0, 0x4000_0000, 1<<31)
	fmt.Printf("%#x %v\n", p, err)

	// Nothing fits within 1 MiB of the image any more.
	_, err = m.Advise(0x10_0000, 0, 0x4000_0000, 0x10_0000)
	fmt.Println(err)

	m.WriteMaps(os.Stdout, 0, ^uintptr(0))
	// Output:
	// 0x3ff00000 <nil>
	// 0x3fe00000 <nil>
	// aspacem: advise 0x100000 bytes aligned 0x10000 within 0x100000 of 0x40000000: aspacem: no free range fits
	// 3ff00000-40000000 ---p 00000000 00:00 0                                  [vmcode]
	// 40000000-40100000 r-xp 00000000 00:00 0                                  C:\app\app.exe
}

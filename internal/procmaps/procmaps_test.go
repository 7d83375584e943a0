package procmaps

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// sample is real /proc/self/maps text (of cat, on Linux 6.18), with the odd
// lines the kernel produces: anonymous ones with a trailing space,
// pseudo-names, a shared mapping, a deleted memfd, a name with spaces.
const sample = `55a97284b000-55a97284d000 r--p 00000000 fe:00 247026                     /usr/bin/cat
55a97284d000-55a972852000 r-xp 00002000 fe:00 247026                     /usr/bin/cat
55a9b1b8b000-55a9b1bac000 rw-p 00000000 00:00 0                          [heap]
7fde24234000-7fde242f8000 rw-p 00000000 00:00 0 
7fde2453e000-7fde24545000 r--s 00000000 fe:00 325737                     /usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache
7fde24600000-7fde24610000 r-xs 00000000 00:01 2048                       /memfd:reachvm-dual (deleted)
7fde24610000-7fde24611000 r--p 00001000 fe:00 1234                       /home/u/my lib.so
7fde24611000-7fde24612000 ---p 00000000 00:00 0 
7ffd0f2a1000-7ffd0f2c2000 rw-p 00000000 00:00 0                          [stack]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
`

func parseAll(t *testing.T, text string) []Entry {
	t.Helper()
	var out []Entry
	err := Parse([]byte(text), func(e *Entry) bool {
		c := *e
		c.Name = bytes.Clone(e.Name)
		out = append(out, c)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestParseSample(t *testing.T) {
	es := parseAll(t, sample)
	if len(es) != 10 {
		t.Fatalf("%d entries, want 10", len(es))
	}
	e := es[1]
	if e.Start != 0x55a97284d000 || e.End != 0x55a972852000 || e.Prot != PermRead|PermExec || e.Shared ||
		e.Offset != 0x2000 || e.DevMajor != 0xfe || e.DevMinor != 0 || e.Dev() != 0xfe00 || e.Inode != 247026 || string(e.Name) != "/usr/bin/cat" {
		t.Fatalf("entry 1 = %+v", e)
	}
	if string(es[2].Name) != "[heap]" || string(es[3].Name) != "" || es[3].Prot != PermRead|PermWrite {
		t.Fatalf("anon entries %+v %+v", es[2], es[3])
	}
	if !es[4].Shared || string(es[5].Name) != "/memfd:reachvm-dual (deleted)" || string(es[6].Name) != "/home/u/my lib.so" {
		t.Fatalf("named entries %+v %+v %+v", es[4], es[5], es[6])
	}
	if es[7].Prot != 0 || es[9].Prot != PermExec || es[9].Start != 0xffffffffff600000 {
		t.Fatalf("entries 7, 9: %+v %+v", es[7], es[9])
	}
	// Every line prints back exactly as the kernel printed it.
	lines := strings.Split(strings.TrimSuffix(sample, "\n"), "\n")
	for i := range es {
		b, _ := es[i].AppendText(nil)
		if string(b) != lines[i] {
			t.Errorf("AppendText:\n got %q\nwant %q", b, lines[i])
		}
	}
}

func TestParseEarlyStopAndEdges(t *testing.T) {
	n := 0
	err := Parse([]byte(sample), func(*Entry) bool { n++; return n < 3 })
	if err != nil || n != 3 {
		t.Fatalf("early stop: %v after %d", err, n)
	}
	// Empty input, empty lines, no final newline, upper-case hex.
	if err := Parse(nil, func(*Entry) bool { t.Fatal("called"); return true }); err != nil {
		t.Fatal(err)
	}
	es := parseAll(t, "\n\n1000-2000 rwxs 0 0:0 0\n\nABC000-ABD000 ---p 0A 1:2 3 x")
	if len(es) != 2 || es[0].Prot != PermRead|PermWrite|PermExec || !es[0].Shared || es[0].Name != nil && len(es[0].Name) != 0 ||
		es[1].Start != 0xabc000 || es[1].Offset != 0xa || es[1].DevMinor != 2 || string(es[1].Name) != "x" {
		t.Fatalf("edge entries %+v", es)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ line, reason string }{
		{"x-2000 r--p 0 0:0 0", "bad start address"},
		{"1000 r--p 0 0:0 0", "bad start address"},
		{"-2000 r--p 0 0:0 0", "bad start address"},
		{"1000-2000r--p 0 0:0 0", "bad end address"},
		{"1000-zz r--p 0 0:0 0", "bad end address"},
		{"2000-1000 r--p 0 0:0 0", "end not above start"},
		{"1000-1000 r--p 0 0:0 0", "end not above start"},
		{"1000-2000 r--p", "bad permissions"},
		{"1000-2000 R--p 0 0:0 0", "bad permissions"},
		{"1000-2000 rW-p 0 0:0 0", "bad permissions"},
		{"1000-2000 r-Xp 0 0:0 0", "bad permissions"},
		{"1000-2000 r--q 0 0:0 0", "bad permissions"},
		{"1000-2000 r--pp 0 0:0 0", "bad permissions"},
		{"1000-2000 r--p g 0:0 0", "bad offset"},
		{"1000-2000 r--p  0 0:0 0", "bad offset"},
		{"1000-2000 r--p 0 0-0 0", "bad device major"},
		{"1000-2000 r--p 0 100000000:0 0", "bad device major"},
		{"1000-2000 r--p 0 0:x 0", "bad device minor"},
		{"1000-2000 r--p 0 0:0", "bad device minor"},
		{"1000-2000 r--p 0 0:0 ", "bad inode"},
		{"1000-2000 r--p 0 0:0 12a", "bad inode"},
		{"1000-2000 r--p 0 0:0 18446744073709551616", "bad inode"},
		{"10000000000000000-20000000000000000 r--p 0 0:0 0", "bad start address"},
		{"1000-2000 r--p 10000000000000000 0:0 0", "bad offset"},
	}
	for _, tt := range tests {
		data := []byte("1000-2000 r--p 0 0:0 0\n" + tt.line + "\n")
		calls := 0
		err := Parse(data, func(*Entry) bool { calls++; return true })
		var se *SyntaxError
		if !errors.As(err, &se) || se.Reason != tt.reason || se.Line != 2 || se.Text != tt.line || calls != 1 {
			t.Errorf("Parse(%q) = %v (%d calls), want line 2: %s", tt.line, err, calls, tt.reason)
		}
		if err != nil && !strings.Contains(err.Error(), "line 2: "+tt.reason) {
			t.Errorf("error text %q", err)
		}
	}
	// Largest values that fit are accepted.
	es := parseAll(t, "0-ffffffffffffffff r--p ffffffffffffffff ffffffff:ffffffff 18446744073709551615 n")
	if es[0].Inode != 1<<64-1 || es[0].Offset != 1<<64-1 || es[0].DevMajor != 1<<32-1 {
		t.Fatalf("max values: %+v", es[0])
	}
	if unsafe.Sizeof(uintptr(0)) == 8 && es[0].End != ^uintptr(0) {
		t.Fatalf("max end %#x", es[0].End)
	}
	// Long lines are truncated in the error.
	long := "1000-2000 r--p 0 0:0 x" + strings.Repeat("y", 500)
	err := Parse([]byte(long), func(*Entry) bool { return true })
	var se *SyntaxError
	if !errors.As(err, &se) || len(se.Text) != 120 {
		t.Fatalf("long line error %v", err)
	}
}

func TestParseSelf(t *testing.T) {
	data, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Skip("no /proc/self/maps:", err)
	}
	want := bytes.Count(data, []byte("\n"))
	n := 0
	var prevEnd uintptr
	err = Parse(data, func(e *Entry) bool {
		if e.Start < prevEnd {
			t.Errorf("entries out of order at %#x", e.Start)
		}
		prevEnd = e.End
		n++
		return true
	})
	if err != nil || n != want {
		t.Fatalf("Parse(/proc/self/maps) = %v, %d entries, want %d", err, n, want)
	}
	allocs := testing.AllocsPerRun(20, func() {
		Parse(data, func(*Entry) bool { return true })
	})
	if allocs > 1 { // the Entry, which escapes to fn; nothing per line
		t.Errorf("Parse allocates %.1f times per call", allocs)
	}
}

// FuzzParse checks that no input makes Parse panic, that every line it
// accepts prints back with AppendText into a line that parses to the same
// entry (names losing their leading spaces, which the format cannot keep),
// and that it stops at the first bad line.
func FuzzParse(f *testing.F) {
	f.Add([]byte(sample))
	if data, err := os.ReadFile("/proc/self/maps"); err == nil {
		f.Add(data)
	}
	for _, s := range []string{
		"", "\n", "0-1 ---p 0 0:0 0", "1000-2000 r--p 0 0:0 0   name with  spaces  ",
		"1000-2000 rwxs ffffffffffffffff ff:ff 18446744073709551615 \x00\xff",
		"1000-2000 r--p 0 0:0 0\r\n", "1000-2000 r--p 0 0:0 0\t/x", "a-b ---p 0 0:0 0 \\012",
		"1-2 ---p 0 0:0 01", "0000000000000001-2 ---p 00000000000000000 0:0 0",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var entries []Entry
		err := Parse(data, func(e *Entry) bool {
			c := *e
			c.Name = bytes.Clone(e.Name)
			entries = append(entries, c)
			return true
		})
		var se *SyntaxError
		if err != nil && !errors.As(err, &se) {
			t.Fatalf("error %v is not a *SyntaxError", err)
		}
		for i := range entries {
			e := &entries[i]
			if e.End <= e.Start {
				t.Fatalf("accepted %+v", e)
			}
			text, _ := e.AppendText(nil)
			var back Entry
			n := 0
			if err := Parse(text, func(b *Entry) bool {
				back = *b
				back.Name = bytes.Clone(b.Name)
				n++
				return true
			}); err != nil || n != 1 {
				t.Fatalf("AppendText(%+v) = %q does not parse: %v (%d entries)", e, text, err, n)
			}
			want := *e
			want.Name = bytes.TrimLeft(e.Name, " ")
			if len(want.Name) == 0 {
				want.Name = nil
			}
			if len(back.Name) == 0 {
				back.Name = nil
			}
			if !bytes.Equal(back.Name, want.Name) || back.Start != want.Start || back.End != want.End ||
				back.Prot != want.Prot || back.Shared != want.Shared || back.Offset != want.Offset ||
				back.DevMajor != want.DevMajor || back.DevMinor != want.DevMinor || back.Inode != want.Inode {
				t.Fatalf("round trip of %q:\n got %+v\nwant %+v", text, back, want)
			}
		}
	})
}

// benchText is a /proc/self/maps of realistic size: the sample repeated to
// about 400 lines (a Go program with a few libraries has 50-100; Firefox
// or a JIT, thousands).
var benchText = []byte(strings.Repeat(sample, 40))

// parseFields is the baseline: the obvious parser, bufio.Scanner plus
// strings.Fields plus strconv, as most Go code that reads maps does it.
func parseFields(data []byte, fn func(*Entry) bool) error {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			return errors.New("short line")
		}
		var e Entry
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			return errors.New("bad range")
		}
		s, err := strconv.ParseUint(lo, 16, 64)
		if err != nil {
			return err
		}
		en, err := strconv.ParseUint(hi, 16, 64)
		if err != nil {
			return err
		}
		e.Start, e.End = uintptr(s), uintptr(en)
		if f[1][0] == 'r' {
			e.Prot |= PermRead
		}
		if f[1][1] == 'w' {
			e.Prot |= PermWrite
		}
		if f[1][2] == 'x' {
			e.Prot |= PermExec
		}
		e.Shared = f[1][3] == 's'
		if e.Offset, err = strconv.ParseUint(f[2], 16, 64); err != nil {
			return err
		}
		maj, min, _ := strings.Cut(f[3], ":")
		ma, err := strconv.ParseUint(maj, 16, 32)
		if err != nil {
			return err
		}
		mi, err := strconv.ParseUint(min, 16, 32)
		if err != nil {
			return err
		}
		e.DevMajor, e.DevMinor = uint32(ma), uint32(mi)
		if e.Inode, err = strconv.ParseUint(f[4], 10, 64); err != nil {
			return err
		}
		if len(f) > 5 {
			e.Name = []byte(strings.Join(f[5:], " "))
		}
		if !fn(&e) {
			return nil
		}
	}
	return sc.Err()
}

func TestParseFieldsBaselineAgrees(t *testing.T) {
	var a, b []Entry
	Parse(benchText, func(e *Entry) bool { c := *e; c.Name = bytes.Clone(e.Name); a = append(a, c); return true })
	if err := parseFields(benchText, func(e *Entry) bool { b = append(b, *e); return true }); err != nil {
		t.Fatal(err)
	}
	if len(a) != len(b) {
		t.Fatalf("%d vs %d entries", len(a), len(b))
	}
	for i := range a {
		if a[i].Start != b[i].Start || a[i].Inode != b[i].Inode || !bytes.Equal(a[i].Name, b[i].Name) {
			t.Fatalf("entry %d: %+v vs %+v", i, a[i], b[i])
		}
	}
}

// BenchmarkParse compares Parse with the bufio.Scanner + strings.Fields
// baseline on the same text.
func BenchmarkParse(b *testing.B) {
	var sink uintptr
	b.Run("impl=procmaps", func(b *testing.B) {
		b.SetBytes(int64(len(benchText)))
		b.ReportAllocs()
		for b.Loop() {
			if err := Parse(benchText, func(e *Entry) bool { sink += e.Start; return true }); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=scanner-fields", func(b *testing.B) {
		b.SetBytes(int64(len(benchText)))
		b.ReportAllocs()
		for b.Loop() {
			if err := parseFields(benchText, func(e *Entry) bool { sink += e.Start; return true }); err != nil {
				b.Fatal(err)
			}
		}
	})
	_ = sink
}

package ldcache

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// build writes a cache of the new format (after an old-format table of
// the same entries if old is set; the old format alone if newToo is not
// set), with a glibc-hwcaps section naming hwcaps and a generator
// section if generator is not empty. Entries with a Subdir get the
// extension bit and its index.
func build(entries []Entry, hwcaps []string, generator string, old, newToo bool) []byte {
	var strs bytes.Buffer
	index := map[string]uint32{}
	// Offsets are relative to the string table start for now.
	intern := func(s string) uint32 {
		if o, ok := index[s]; ok {
			return o
		}
		o := uint32(strs.Len())
		strs.WriteString(s)
		strs.WriteByte(0)
		index[s] = o
		return o
	}
	for _, e := range entries {
		intern(e.Name)
		intern(e.Path)
	}
	for _, h := range hwcaps {
		intern(h)
	}
	var out bytes.Buffer
	w32 := func(v uint32) { binary.Write(&out, le, v) }
	if old {
		out.WriteString(magicOld)
		out.WriteByte(0)
		w32(uint32(len(entries)))
		// Old keys index the strings after the old table; with the new
		// format after it, glibc reads only the new table, and the old
		// keys are left 0.
		for _, e := range entries {
			w32(uint32(e.Flags))
			if newToo {
				w32(0)
				w32(0)
				continue
			}
			w32(index[e.Name])
			w32(index[e.Path])
		}
		if !newToo {
			out.Write(strs.Bytes())
			return out.Bytes()
		}
		for out.Len()%8 != 0 {
			out.WriteByte(0)
		}
	}
	strStart := uint32(newHeaderSize + len(entries)*newEntrySize)
	out.WriteString(magicNew)
	w32(uint32(len(entries)))
	w32(uint32(strs.Len()))
	out.Write([]byte{endianLittle, 0, 0, 0})
	extOffAt := out.Len()
	w32(0)
	w32(0)
	w32(0)
	w32(0)
	for _, e := range entries {
		w32(uint32(e.Flags))
		w32(strStart + index[e.Name])
		w32(strStart + index[e.Path])
		w32(0)
		hw := e.HWCap
		if e.Subdir != "" {
			i := 0
			for i < len(hwcaps) && hwcaps[i] != e.Subdir {
				i++
			}
			hw = hwcapExtension | uint64(i)
		}
		binary.Write(&out, le, hw)
	}
	out.Write(strs.Bytes())
	if len(hwcaps) == 0 && generator == "" {
		return out.Bytes()
	}
	for out.Len()%4 != 0 {
		out.WriteByte(0)
	}
	ext := uint32(out.Len())
	le.PutUint32(out.Bytes()[extOffAt:], ext)
	var secs [][3]uint32
	nsec := 0
	if generator != "" {
		nsec++
	}
	if len(hwcaps) > 0 {
		nsec++
	}
	w32(extensionMagic)
	w32(uint32(nsec))
	data := ext + 8 + uint32(nsec)*16
	if generator != "" {
		secs = append(secs, [3]uint32{tagGenerator, data, uint32(len(generator))})
		data += uint32(len(generator))
		data = (data + 3) &^ 3
	}
	if len(hwcaps) > 0 {
		secs = append(secs, [3]uint32{tagGlibcHwcaps, data, uint32(4 * len(hwcaps))})
	}
	for _, s := range secs {
		w32(s[0])
		w32(0)
		w32(s[1])
		w32(s[2])
	}
	if generator != "" {
		out.WriteString(generator)
		for out.Len()%4 != 0 {
			out.WriteByte(0)
		}
	}
	for _, h := range hwcaps {
		w32(strStart + index[h])
	}
	return out.Bytes()
}

var x8664 = int32(FlagX8664Lib64 | FlagELFLibc6)

var sample = []Entry{
	{Name: "libfoo.so.1", Path: "/usr/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v3/libfoo.so.1", Flags: x8664, Subdir: "x86-64-v3"},
	{Name: "libfoo.so.1", Path: "/usr/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v2/libfoo.so.1", Flags: x8664, Subdir: "x86-64-v2"},
	{Name: "libfoo.so.1", Path: "/usr/lib/x86_64-linux-gnu/libfoo.so.1", Flags: x8664},
	{Name: "libfoo.so.1", Path: "/usr/lib32/libfoo.so.1", Flags: 0x0803},
	{Name: "libgen.so.2", Path: "/opt/lib/libgen.so.2", Flags: FlagELF},
	{Name: "libgen.so.2", Path: "/usr/lib/libgen.so.2", Flags: x8664},
	{Name: "liblegacy.so.1", Path: "/usr/lib/x86_64-linux-gnu/tls/liblegacy.so.1", Flags: x8664, HWCap: 1 << 63},
	{Name: "libz.so.1", Path: "/lib/x86_64-linux-gnu/libz.so.1", Flags: x8664},
}

var sampleHwcaps = []string{"x86-64-v2", "x86-64-v3", "x86-64-v4"}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name        string
		old, newToo bool
	}{{"new", false, true}, {"old+new", true, true}, {"old", true, false}} {
		t.Run(tc.name, func(t *testing.T) {
			ents := sample
			hw := sampleHwcaps
			if !tc.newToo {
				// The old format has no hwcap field.
				ents = nil
				for _, e := range sample {
					if e.HWCap == 0 && e.Subdir == "" {
						ents = append(ents, e)
					}
				}
				hw = nil
			}
			data := build(ents, hw, "ldconfig (test) 2.36", tc.old, tc.newToo)
			c, err := Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			for i, e := range c.Entries {
				if e.Subdir != "" {
					if e.HWCap&^0xffffffff != hwcapExtension {
						t.Errorf("entry %d (%s): hwcap %#x lacks the extension bit", i, e.Name, e.HWCap)
					}
					c.Entries[i].HWCap = 0
				}
			}
			if !reflect.DeepEqual(c.Entries, ents) {
				t.Errorf("entries\n%+v\nwant\n%+v", c.Entries, ents)
			}
			if c.OldOnly != !tc.newToo {
				t.Errorf("OldOnly %v", c.OldOnly)
			}
			if tc.newToo && c.Generator != "ldconfig (test) 2.36" {
				t.Errorf("generator %q", c.Generator)
			}
		})
	}
}

// TestSelect checks glibc's choice among the entries of a name.
func TestSelect(t *testing.T) {
	c, err := Parse(build(sample, sampleHwcaps, "", false, true))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		subdirs []string
		name    string
		want    string
	}{
		// The most preferred subdirectory the CPU supports wins.
		{[]string{"x86-64-v4", "x86-64-v3", "x86-64-v2"}, "libfoo.so.1", "/usr/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v3/libfoo.so.1"},
		{[]string{"x86-64-v2"}, "libfoo.so.1", "/usr/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v2/libfoo.so.1"},
		// None supported: the ordinary entry.
		{nil, "libfoo.so.1", "/usr/lib/x86_64-linux-gnu/libfoo.so.1"},
		// The machine's own flags beat FlagELF, whatever the order.
		{nil, "libgen.so.2", "/usr/lib/libgen.so.2"},
		{nil, "libz.so.1", "/lib/x86_64-linux-gnu/libz.so.1"},
		// Legacy hwcap entries are not taken.
		{nil, "liblegacy.so.1", ""},
	} {
		got := c.Select(Machine{Flags: x8664, Subdirs: tc.subdirs})[tc.name]
		if got != tc.want {
			t.Errorf("%s with %v: %q, want %q", tc.name, tc.subdirs, got, tc.want)
		}
	}
	// Another machine takes only its own and FlagELF entries.
	m := c.Select(Machine{Flags: 0x0803})
	if m["libfoo.so.1"] != "/usr/lib32/libfoo.so.1" || m["libgen.so.2"] != "/opt/lib/libgen.so.2" || m["libz.so.1"] != "" {
		t.Errorf("i386 selection %v", m)
	}
}

// TestMalformed breaks a good cache in each way Parse must notice.
func TestMalformed(t *testing.T) {
	good := build(sample, sampleHwcaps, "gen", false, true)
	nstr := uint32(newHeaderSize + len(sample)*newEntrySize)
	ext := le.Uint32(good[32:])
	for _, tc := range []struct {
		name string
		edit func(b []byte) []byte
		want string
	}{
		{"empty", func(b []byte) []byte { return nil }, "bad magic"},
		{"magic", func(b []byte) []byte { b[0] = 'G'; return b }, "bad magic"},
		{"truncated header", func(b []byte) []byte { return b[:40] }, "truncated header"},
		{"big-endian", func(b []byte) []byte { b[28] = 3; return b }, "big-endian"},
		{"invalid", func(b []byte) []byte { b[28] = 1; return b }, "marks itself invalid"},
		{"nlibs", func(b []byte) []byte { le.PutUint32(b[20:], 0xffffffff); return b }, "runs past the end"},
		{"len_strings", func(b []byte) []byte { le.PutUint32(b[24:], 0xffffff); return b }, "string table"},
		{"key outside", func(b []byte) []byte { le.PutUint32(b[newHeaderSize+4:], 0xfffffff0); return b }, "outside the string table"},
		{"key in the table", func(b []byte) []byte { le.PutUint32(b[newHeaderSize+4:], 8); return b }, "before the string table"},
		{"unterminated", func(b []byte) []byte {
			// The string table ends one byte early: the last string
			// loses its NUL.
			le.PutUint32(b[24:], le.Uint32(b[24:])-1)
			return b
		}, "not NUL-terminated"},
		{"relative path", func(b []byte) []byte {
			i := bytes.Index(b[nstr:], []byte("/usr/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v3"))
			b[int(nstr)+i] = 'u'
			return b
		}, "not absolute"},
		{"hwcap index", func(b []byte) []byte { le.PutUint32(b[newHeaderSize+16:], 7); return b }, "glibc-hwcaps index 7"},
		{"extension misaligned", func(b []byte) []byte { le.PutUint32(b[32:], ext+2); return b }, "not a multiple of 4"},
		{"extension outside", func(b []byte) []byte { le.PutUint32(b[32:], 0x7ffffff0); return b }, "extension directory"},
		{"extension magic", func(b []byte) []byte { b[ext] ^= 1; return b }, "magic"},
		{"extension count", func(b []byte) []byte { le.PutUint32(b[ext+4:], 0x10000000); return b }, "sections runs past"},
		{"section outside", func(b []byte) []byte { le.PutUint32(b[ext+8+12:], 0xffffff); return b }, "runs past the end"},
		{"old table", func(b []byte) []byte {
			o := append([]byte(magicOld+"\x00"), 0xff, 0xff, 0xff, 0x0f)
			return append(o, b...)
		}, "old-format table"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.edit(bytes.Clone(good)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestSystemCache parses this machine's /etc/ld.so.cache and compares it
// with what ldconfig -p prints of it: the same entries, in the same order,
// and glibc's choice for libz.so.1.
func TestSystemCache(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("ld.so.cache is glibc's, on Linux")
	}
	data, err := os.ReadFile("/etc/ld.so.cache")
	if errors.Is(err, os.ErrNotExist) {
		t.Skip("no /etc/ld.so.cache on this machine")
	}
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Entries) == 0 {
		t.Fatal("no entries")
	}
	ldconfig, err := exec.LookPath("ldconfig")
	if err != nil {
		if _, err = os.Stat("/sbin/ldconfig"); err != nil {
			t.Skip("no ldconfig to compare with")
		}
		ldconfig = "/sbin/ldconfig"
	}
	out, err := exec.Command(ldconfig, "-p").Output()
	if err != nil {
		t.Fatalf("ldconfig -p: %v", err)
	}
	// "\tlibz.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libz.so.1"
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n")[1:] {
		if g, ok := strings.CutPrefix(l, "Cache generated by: "); ok {
			if g != c.Generator {
				t.Errorf("generator %q, ldconfig -p says %q", c.Generator, g)
			}
			continue
		}
		lines = append(lines, l)
	}
	if len(lines) != len(c.Entries) {
		t.Fatalf("ldconfig -p lists %d entries, Parse %d", len(lines), len(c.Entries))
	}
	flagNames := map[int32]string{FlagELF: "ELF", FlagX8664Lib64 | FlagELFLibc6: "libc6,x86-64"}
	for i, l := range lines {
		name, rest, _ := strings.Cut(strings.TrimSpace(l), " (")
		kind, path, _ := strings.Cut(rest, ") => ")
		e := c.Entries[i]
		if e.Name != name || e.Path != path {
			t.Errorf("entry %d: %s => %s, ldconfig -p: %s => %s", i, e.Name, e.Path, name, path)
		}
		if fn, ok := flagNames[e.Flags]; ok && e.HWCap == 0 && kind != fn {
			t.Errorf("entry %d (%s): flags %#x, ldconfig -p says %q", i, name, e.Flags, kind)
		}
		if e.Subdir != "" && !strings.Contains(kind, "hwcap: \""+e.Subdir+"\"") {
			t.Errorf("entry %d (%s): glibc-hwcaps %q, ldconfig -p says %q", i, name, e.Subdir, kind)
		}
	}
	sel := c.Select(Machine{Flags: FlagX8664Lib64 | FlagELFLibc6})
	var want string
	for _, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "libz.so.1 (libc6,x86-64) => ") {
			_, want, _ = strings.Cut(l, " => ")
		}
	}
	if want == "" {
		t.Skip("no libz.so.1 in the cache")
	}
	if sel["libz.so.1"] != want {
		t.Errorf("libz.so.1 selects %q, ldconfig -p lists %q", sel["libz.so.1"], want)
	}
}

// FuzzLDCache feeds Parse arbitrary bytes: it must not panic, and a cache
// it accepts must survive being written back and parsed again unchanged.
func FuzzLDCache(f *testing.F) {
	f.Add(build(sample, sampleHwcaps, "gen", false, true))
	f.Add(build(sample, sampleHwcaps, "", true, true))
	f.Add(build(sample[4:6], nil, "", true, false))
	f.Add([]byte(magicNew))
	f.Add([]byte(magicOld + "\x00\x01\x00\x00\x00"))
	if data, err := os.ReadFile("/etc/ld.so.cache"); err == nil {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not an *Error", err)
			}
			return
		}
		_ = c.Select(Machine{Flags: FlagX8664Lib64 | FlagELFLibc6, Subdirs: []string{"x86-64-v3", "x86-64-v2"}})
		var hw []string
		seen := map[string]bool{}
		for _, e := range c.Entries {
			if e.Subdir != "" && !seen[e.Subdir] {
				seen[e.Subdir] = true
				hw = append(hw, e.Subdir)
			}
		}
		if c.OldOnly {
			return // the old format alone is not rebuilt (no hwcaps)
		}
		// Rebuild without the legacy hwcap bits' ISA level (written
		// as parsed) and parse again.
		ents := make([]Entry, len(c.Entries))
		for i, e := range c.Entries {
			if e.Subdir != "" {
				e.HWCap = 0
			}
			ents[i] = e
		}
		c2, err := Parse(build(ents, hw, c.Generator, false, true))
		if err != nil {
			t.Fatalf("rebuilt cache: %v", err)
		}
		for i := range ents {
			e, e2 := c.Entries[i], c2.Entries[i]
			if e.Name != e2.Name || e.Path != e2.Path || e.Flags != e2.Flags || e.Subdir != e2.Subdir {
				t.Fatalf("entry %d: %+v, rebuilt %+v", i, e, e2)
			}
		}
	})
}

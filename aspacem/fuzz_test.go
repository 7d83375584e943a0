package aspacem

import (
	"encoding/binary"
	"reflect"
	"testing"

	"github.com/reachvm/reachvm/mem"
)

// FuzzMapOps decodes the input as a sequence of operations on a small map
// (Update with arbitrary, often invalid, segments; Advise with arbitrary
// arguments; Lookup; Segments) and checks that nothing panics, that
// Update fails exactly when the reference model's validation does and
// changes nothing then, that the invariants hold after every operation,
// and that the map always equals the page-by-page reference model and
// Advise its brute-force answer.
func FuzzMapOps(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17})
	f.Add([]byte("\x00\x00\x10\x00\x00\x20\x02\x03vmcode\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Add([]byte("\x01\x00\x02\x00\x03\x00\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Add([]byte("\x00\x00\x00\x00\x00\x40\x03\x01\xff\xfe\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Fuzz(fuzzMapOps)
}

func fuzzMapOps(t *testing.T, data []byte) {
	{
		cfg := Config{Lo: 0x10000, Hi: 0x10000 + 64*0x1000, PageSize: 0x1000, Granularity: 0x4000, FoldCase: len(data)%2 == 1}
		m := mustNew(t, cfg)
		ref := newRefMap(cfg)
		names := []string{"", "/lib/a.so", "/LIB/A.so", "dual", "bad\x00name", "\xff", "vm\ncode", "[heap]"}
		u16 := func() uintptr {
			if len(data) < 2 {
				data = nil
				return 0
			}
			v := binary.LittleEndian.Uint16(data)
			data = data[2:]
			return uintptr(v)
		}
		b := func() byte {
			if len(data) == 0 {
				return 0
			}
			v := data[0]
			data = data[1:]
			return v
		}
		for steps := 0; len(data) > 0 && steps < 200; steps++ {
			switch op := b() % 4; op {
			case 0, 1: // Update
				s := Segment{
					Start:  cfg.Lo - 0x2000 + u16()*0x100,
					Kind:   Kind(b() % 7),
					Prot:   mem.Prot(b() % 9),
					Owner:  names[b()%byte(len(names))],
					Name:   names[b()%byte(len(names))],
					Offset: uint64(b()) * 0x800,
					Shared: b()%2 == 0,
				}
				s.End = s.Start + u16()*0x100
				before := m.Segments(cfg.Lo, cfg.Hi)
				err := m.Update(s)
				if wantErr := s.validate(&cfg); (err != nil) != (wantErr != nil) {
					t.Fatalf("Update(%v) = %v, validate says %v", s, err, wantErr)
				}
				if err != nil {
					if after := m.Segments(cfg.Lo, cfg.Hi); !reflect.DeepEqual(before, after) {
						t.Fatalf("failed Update(%v) changed the map", s)
					}
					continue
				}
				ref.update(s)
				if cfg.FoldCase {
					for _, seg := range m.Segments(cfg.Lo, cfg.Hi) {
						for a := seg.Start; a < seg.End; a += cfg.PageSize {
							ref.pages[(a-cfg.Lo)/cfg.PageSize].Name = seg.Name
						}
					}
				}
			case 2: // Advise
				size, align := u16()*0x100, uintptr(1)<<(b()%20)
				if b()%4 == 0 {
					align = uintptr(b())
				}
				near, maxDist := u16()*0x100, u16()*0x100
				p, err := m.Advise(size, align, near, maxDist)
				if size == 0 || size%cfg.PageSize != 0 || align&(align-1) != 0 {
					if err == nil {
						t.Fatalf("Advise(%#x, %#x, ...) accepted bad arguments", size, align)
					}
					continue
				}
				wantP, ok := ref.advise(size, max(align, cfg.Granularity), near, maxDist)
				if (err == nil) != ok || (ok && p != wantP) {
					t.Fatalf("Advise(%#x, %#x, %#x, %#x) = %#x, %v; reference %#x, %v", size, align, near, maxDist, p, err, wantP, ok)
				}
			case 3: // Lookup and Segments at arbitrary addresses
				a, z := u16()*0x100, u16()*0x100
				if s, ok := m.Lookup(a); ok != (a >= cfg.Lo && a < cfg.Hi) || (ok && !s.Contains(a)) {
					t.Fatalf("Lookup(%#x) = %v, %v", a, s, ok)
				}
				m.Segments(a, z)
			}
			if err := m.CheckInvariants(); err != nil {
				t.Fatal(err)
			}
			if got, want := m.Segments(cfg.Lo, cfg.Hi), ref.segments(); !reflect.DeepEqual(got, want) {
				t.Fatalf("map differs from the reference\n got %v\nwant %v", got, want)
			}
		}
	}
}

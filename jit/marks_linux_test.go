package jit

import (
	"math/rand"
	"testing"
)

// randomMarks returns n marks in offset order, like a fragment's: mostly
// exact marks of consecutive instructions, some fixed ones inside
// inserted code, PCs that jump back and forth (a followed branch).
func randomMarks(r *rand.Rand, n int, tag uintptr) []mark {
	ms := make([]mark, 0, n)
	off, pc := uint32(r.Intn(16)), tag
	for range n {
		k := mark{off: off, pc: pc, spill: noSpill, exact: true}
		switch r.Intn(8) {
		case 0:
			k.exact, k.rsp = false, int32(r.Intn(1<<20))-1<<19
		case 1:
			k.exact, k.inCtx, k.spill = false, uint16(r.Uint32()), int8(r.Intn(16))
		case 2:
			pc = uintptr(int64(pc) + int64(r.Intn(1<<30)) - 1<<29)
		}
		ms = append(ms, k)
		off += 1 + uint32(r.Intn(300))
		pc += 1 + uintptr(r.Intn(15))
	}
	return ms
}

func TestPackedMarksRoundTrip(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for i := range 200 {
		tag := uintptr(r.Uint64() >> 17)
		ms := randomMarks(r, i%40, tag)
		f := &fragment{tag: tag, marks: appendMarks(nil, ms, tag)}
		got := f.unpackMarks(nil)
		if len(got) != len(ms) {
			t.Fatalf("case %d: %d marks back, want %d", i, len(got), len(ms))
		}
		for j := range ms {
			if got[j] != ms[j] {
				t.Fatalf("case %d mark %d: %+v back, want %+v", i, j, got[j], ms[j])
			}
		}
		// markAt finds the last mark at or before each offset.
		for j, k := range ms {
			f.entry = 0x1000
			at, ok := f.markAt(f.entry + uintptr(k.off))
			if !ok || at != k {
				t.Fatalf("case %d: markAt(off %d) = %+v, %v; want mark %d %+v", i, k.off, at, ok, j, k)
			}
			if k.off > 0 && (j == 0 || ms[j-1].off < k.off-1) {
				before, ok := f.markAt(f.entry + uintptr(k.off-1))
				if j == 0 {
					if ok {
						t.Fatalf("case %d: markAt before the first mark found %+v", i, before)
					}
				} else if !ok || before != ms[j-1] {
					t.Fatalf("case %d: markAt(off %d) = %+v, want %+v", i, k.off-1, before, ms[j-1])
				}
			}
		}
	}
}

// TestPackedMarksSize holds the reason for packing: a copied
// instruction's exact mark takes three bytes, not a mark's 24.
func TestPackedMarksSize(t *testing.T) {
	const tag = 0x7f0000001000
	var ms []mark
	for i := range 100 {
		ms = append(ms, mark{off: uint32(4 * i), pc: tag + uintptr(5*i), spill: noSpill, exact: true})
	}
	if n := len(appendMarks(nil, ms, tag)); n != 3*len(ms) {
		t.Fatalf("%d exact marks packed into %d bytes, want %d", len(ms), n, 3*len(ms))
	}
}

// FuzzPackedMarks decodes arbitrary bytes as packed marks: the reader
// must stop, never panic, and what it decodes must encode back to the
// bytes it consumed.
func FuzzPackedMarks(f *testing.F) {
	r := rand.New(rand.NewSource(2))
	for i := range 8 {
		f.Add(appendMarks(nil, randomMarks(r, i*3, 0x400000), 0x400000))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		const tag = 0x400000
		fr := &fragment{tag: tag, marks: b}
		ms := fr.unpackMarks(nil)
		_, _ = fr.markAt(0x100)
		again := appendMarks(nil, ms, tag)
		back := (&fragment{tag: tag, marks: again}).unpackMarks(nil)
		if len(back) != len(ms) {
			t.Fatalf("%d marks re-decoded as %d", len(ms), len(back))
		}
		for i := range ms {
			if back[i] != ms[i] {
				t.Fatalf("mark %d: %+v re-decoded as %+v", i, ms[i], back[i])
			}
		}
	})
}

// BenchmarkKeepMarks measures keeping a fragment's marks at
// installation: packed (what the machine does) against copying them
// unpacked, the baseline.
func BenchmarkKeepMarks(b *testing.B) {
	r := rand.New(rand.NewSource(3))
	const tag = 0x7f0000001000
	ms := randomMarks(r, 25, tag)
	b.Run("packed", func(b *testing.B) {
		m := &Machine{}
		n := 0
		for range b.N {
			if m.markChunk > 8 {
				m.markChunk = 0
				m.markChunks[0] = m.markChunks[0][:0]
			}
			n += len(m.keepMarks(ms, tag))
		}
		b.ReportMetric(float64(n)/float64(b.N), "bytes/frag")
	})
	b.Run("unpacked", func(b *testing.B) {
		chunk := make([]mark, 0, 1<<14)
		for range b.N {
			if cap(chunk)-len(chunk) < len(ms) {
				chunk = chunk[:0]
			}
			chunk = append(chunk, ms...)
		}
		b.ReportMetric(float64(24*len(ms)), "bytes/frag")
	})
}

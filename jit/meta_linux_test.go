package jit

import (
	"strings"
	"testing"

	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/mem"
)

// TestMetaKernels: meta instructions before every instruction of every
// kernel that reserve three registers (spilling those that are live),
// fill them with junk, and count the instruction with a load, lea and
// store to a cell of the test's: the kernels' results are the native
// ones, and the count is a counter's.
func TestMetaKernels(t *testing.T) {
	ctr := NewCounter(PerThread)
	var cell uintptr
	client := &Client{Block: func(b *Block) {
		for i := range b.Len() {
			b.InsertMeta(i, func(m *Meta) {
				p, v, junk := m.ReserveReg(), m.ReserveReg(), m.ReserveReg()
				m.MovImm(junk, 0xdead_beef_dead_beef)
				m.MovImm(p, uint64(cell))
				m.Load(v, p, 0)
				m.AddImm(v, 1)
				m.Store(p, 0, v)
				m.AppReg(junk, RSP)
			})
			b.AddCounter(i, ctr, 1)
		}
	}}
	m, _ := newTestMachine(t, placements[1].cfg, &Options{Client: client})
	s, err := m.v.ReserveSlot(64<<10, "meta test")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	if err := s.Commit(s.Base(), s.Size(), mem.ProtRW); err != nil {
		t.Fatal(err)
	}
	cell = s.Base()
	lib := loadKernels(t, m.v)
	runKernels(t, m, lib, "with meta instructions", nil)
	if n := *(*uint64)(rawmem.Ptr(cell)); n == 0 || n != ctr.Value() {
		t.Errorf("the meta instructions counted %d, the counter %d", n, ctr.Value())
	}
}

// TestMetaErrors: a meta instruction that writes a register it did not
// reserve fails the translation, saying so.
func TestMetaErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		fn   func(m *Meta)
		want string
	}{
		{"unreserved", func(m *Meta) { m.MovImm(RAX, 1) }, "rax, which is not reserved"},
		{"too many", func(m *Meta) {
			for range 16 {
				m.ReserveReg()
			}
		}, "no register left"},
		{"bad register", func(m *Meta) { m.Store(RAX, 0, Reg(20)) }, "Store of reg(20)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := &Client{Block: func(b *Block) { b.InsertMeta(0, tc.fn) }}
			m, _ := newTestMachine(t, placements[1].cfg, &Options{Client: client})
			lib := loadKernels(t, m.v)
			_, err := m.Run(lookup(t, lib, "k_fib"), 5)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one saying %q", err, tc.want)
			}
		})
	}
}

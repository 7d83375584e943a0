package jit

import (
	"math"
	"os"
	"testing"
	"time"

	"github.com/reachvm/reachvm/vmm"
)

// benchClients are the clients the client benchmarks compare: none, one
// that takes every event and inserts nothing, one that walks every
// instruction, and insertions: one counter for all blocks, added to by
// each block's length (every update waits for the last: a chain through
// memory); a counter per block, added to by 1 (as the inscount and
// bbcount samples do); a record per memory operand (memtrace's).
func benchClients() []struct {
	name   string
	client func() *Client
} {
	return []struct {
		name   string
		client func() *Client
	}{
		{"none", func() *Client { return nil }},
		{"events", func() *Client {
			return &Client{
				Block:        func(b *Block) {},
				ThreadStart:  func(*Thread) {},
				ThreadExit:   func(*Thread) {},
				SyscallPre:   func(*Syscall) {},
				SyscallPost:  func(*Syscall) {},
				Exit:         func(*ExitEvent) {},
				ModuleLoad:   func(*Module) {},
				ModuleUnload: func(*Module) {},
				Signal:       func(*SignalEvent) {},
			}
		}},
		{"walk", func() *Client {
			sink := 0
			return &Client{Block: func(b *Block) {
				for i := range b.Len() {
					in := b.Instr(i)
					sink += in.Len() + int(in.PC()&1) + len(in.Bytes())
					if in.HasMemOperand() {
						sink++
					}
				}
			}}
		}},
		{"counter", func() *Client {
			c := NewCounter(PerThread)
			return &Client{Block: func(b *Block) { b.AddCounter(0, c, int64(b.Len())) }}
		}},
		{"perblock", func() *Client {
			blocks := map[uintptr]*Counter{}
			return &Client{Block: func(b *Block) {
				c := blocks[b.PC()]
				if c == nil {
					c = NewCounter(PerThread)
					blocks[b.PC()] = c
				}
				b.AddCounter(0, c, 1)
			}}
		}},
		{"memtrace", func() *Client {
			n := 0
			buf := NewTraceBuffer(func(t *Thread, recs []TraceRecord) { n += len(recs) })
			return &Client{Block: func(b *Block) {
				for i := range b.Len() {
					if b.Instr(i).HasMemOperand() {
						b.RecordEA(i, buf, uint32(i))
					}
				}
			}}
		}},
	}
}

// BenchmarkClientKernels times each kernel under the translator with
// each of benchClients (warm cache), for ratios to "none" in the same
// run: what a client's insertions cost per execution, and that taking
// every event costs nothing once the code is translated.
func BenchmarkClientKernels(b *testing.B) {
	for _, k := range kernels {
		if k.need != nil && !k.need() || k.micro {
			continue
		}
		for _, c := range benchClients() {
			b.Run(k.name+"/"+c.name, func(b *testing.B) {
				m, _ := newTestMachine(b, vmm.Config{VMCodeBase: lowBase}, &Options{Client: c.client()})
				lib := loadKernels(b, m.v)
				fn := lookup(b, lib, k.name)
				want := Call(fn, k.bench...)
				if got, err := m.Run(fn, k.bench...); err != nil || got != want {
					b.Fatalf("%#x, %v; native %#x", got, err, want)
				}
				for b.Loop() {
					m.Run(fn, k.bench...)
				}
			})
		}
	}
}

// BenchmarkTranslateClient is BenchmarkTranslate's superblock case over
// libc with each of benchClients, in the same process: basic blocks
// translated per second with a client that sees every block (and, with
// "walk", every instruction), against none.
func BenchmarkTranslateClient(b *testing.B) {
	const lib = "/usr/lib/x86_64-linux-gnu/libc.so.6"
	if _, err := os.Stat(lib); err != nil {
		b.Skip(err)
	}
	fns := mapText(b, lib)
	for _, c := range benchClients() {
		b.Run(c.name, func(b *testing.B) {
			m, _ := newTestMachine(b, vmm.Config{VMCodeSize: 512 << 20}, &Options{MaxCacheSize: 256 << 20, Client: c.client()})
			translateLoop(b, m, fns)
			st := m.Stats()
			b.ReportMetric(float64(st.Blocks)/b.Elapsed().Seconds(), "bb/s")
		})
	}
}

// BenchmarkTraceRecords times each kernel with a trace record of every
// memory reference its instructions make (MemRefs, as the memtrace
// sample records them) against the same kernel with no client, the two
// runs alternating in the same process, so that the machine's noise
// falls on both: x-none is the ratio, ns/ref what one record adds, and
// refs/run how many a run makes. The last sub-benchmark, geomean, runs
// every kernel once per iteration and reports the ratios' geometric
// mean (the micro-benchmarks of calls and returns outside it, as
// `reachvm bench kernels` leaves them).
func BenchmarkTraceRecords(b *testing.B) {
	var recs uint64
	buf := NewTraceBuffer(func(t *Thread, r []TraceRecord) { recs += uint64(len(r)) })
	client := &Client{Block: func(bl *Block) {
		for i := range bl.Len() {
			for j, ref := range bl.Instr(i).MemRefs() {
				if ref.AddressOnly || ref.Size == 0 || ref.Seg == SegGS {
					continue
				}
				bl.RecordRef(i, buf, ref, uint32(j))
			}
		}
	}}
	none, _ := newTestMachine(b, vmm.Config{VMCodeBase: lowBase}, nil)
	rec, _ := newTestMachine(b, vmm.Config{VMCodeBase: lowBase}, &Options{Client: client})
	noneLib, recLib := loadKernels(b, none.v), loadKernels(b, rec.v)
	type pair struct {
		k             kernel
		fnNone, fnRec uintptr
		tNone, tRec   time.Duration
		recs, runs    uint64
	}
	// timed runs p's kernel once without records and once with, and
	// adds up their times and records.
	timed := func(p *pair) {
		rec.flushTraces()
		before := recs
		t0 := time.Now()
		none.Run(p.fnNone, p.k.bench...)
		t1 := time.Now()
		rec.Run(p.fnRec, p.k.bench...)
		t2 := time.Now()
		rec.flushTraces()
		p.tNone += t1.Sub(t0)
		p.tRec += t2.Sub(t1)
		p.recs += recs - before
		p.runs++
	}
	var pairs []*pair
	for _, k := range kernels {
		if k.need != nil && !k.need() {
			continue
		}
		p := &pair{k: k, fnNone: lookup(b, noneLib, k.name), fnRec: lookup(b, recLib, k.name)}
		want := Call(p.fnNone, k.bench...)
		if got, err := none.Run(p.fnNone, k.bench...); err != nil || got != want {
			b.Fatalf("%s: %#x, %v; native %#x", k.name, got, err, want)
		}
		if got, err := rec.Run(p.fnRec, k.bench...); err != nil || got != want {
			b.Fatalf("%s with records: %#x, %v; native %#x", k.name, got, err, want)
		}
		pairs = append(pairs, p)
	}
	for _, p := range pairs {
		b.Run(p.k.name, func(b *testing.B) {
			*p = pair{k: p.k, fnNone: p.fnNone, fnRec: p.fnRec}
			for b.Loop() {
				timed(p)
			}
			b.ReportMetric(float64(p.tRec)/float64(p.tNone), "x-none")
			b.ReportMetric(float64(p.tRec-p.tNone)/float64(p.recs), "ns/ref")
			b.ReportMetric(float64(p.recs)/float64(p.runs), "refs/run")
		})
	}
	b.Run("geomean", func(b *testing.B) {
		for _, p := range pairs {
			*p = pair{k: p.k, fnNone: p.fnNone, fnRec: p.fnRec}
		}
		for b.Loop() {
			for _, p := range pairs {
				if !p.k.micro {
					timed(p)
				}
			}
		}
		logSum, n := 0.0, 0
		for _, p := range pairs {
			if !p.k.micro {
				logSum += math.Log(float64(p.tRec) / float64(p.tNone))
				n++
			}
		}
		b.ReportMetric(math.Exp(logSum/float64(n)), "x-none")
	})
}

//go:build linux && amd64

package clients

import (
	"path/filepath"
	"runtime"
	"testing"

	"github.com/reachvm/reachvm/jit"
)

// BenchmarkMemtrace runs kernels under memtrace in this process: with no
// client, with the records dropped (the inline recording and the flushes
// alone), and with the trace written to a file (the recording, the
// encoding and the file system): file against drop is what the encoder
// costs. The metric ns/ref divides a run by the kernel's references.
func BenchmarkMemtrace(b *testing.B) {
	prog := kernelsProgram(b)
	for _, k := range []struct{ name, n string }{
		{"k_interp", "20000"},
		{"k_fib", "27"},
	} {
		// The records of a run, for the metric.
		var records float64
		for _, mode := range []string{"none", "drop", "file"} {
			b.Run(k.name+"/"+mode, func(b *testing.B) {
				defer quiet(b)()
				var args []string
				client := "memtrace"
				switch mode {
				case "none":
					client = ""
				case "drop":
					args = []string{"drop"}
				case "file":
					args = []string{"file=" + filepath.Join(b.TempDir(), "trace")}
				}
				for range b.N {
					if tool := benchRunArgs(b, client, args, prog, k.name, k.n); tool != nil {
						records = float64(tool.state.(*memtrace).records)
					}
				}
				if records > 0 {
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/records, "ns/record")
				}
			})
		}
	}
}

// BenchmarkMemtraceEncode times the encoder alone: the records of a real
// run of k_interp (as its encoder got them; the first 64 buffers, 4 MiB,
// so that the records come from the caches as a thread's stage does),
// encoded a buffer (4095 records) at a time, as the encoder does, into a
// trace written to nowhere; with the loop in assembly (asm, the
// encoder's) and in Go (go, its specification).
func BenchmarkMemtraceEncode(b *testing.B) {
	recs, mt := kernelRecords(b, "k_interp", "200")
	recs = recs[:min(len(recs), 64*4095)]
	mt.obuf = make([]byte, 0, memFileBuffer)
	runtime.GC() // of the run's garbage, not during the timing
	asm := plainEncoder
	defer func() { plainEncoder = asm }()
	for _, loop := range []struct {
		name string
		fn   func([]byte, int, []jit.TraceRecord, []uint64, []memTally, uint64) (int, int, uint64)
	}{{"asm", asm}, {"go", encodePlain}} {
		b.Run(loop.name, func(b *testing.B) {
			plainEncoder = loop.fn
			b.SetBytes(int64(len(recs)) * 16)
			for range b.N {
				for k := range mt.code {
					mt.code[k] |= memCodeUndefined
				}
				for i := 0; i < len(recs); i += 4095 {
					mt.encodeLocked(1, recs[i:min(len(recs), i+4095)], 1)
					if len(mt.obuf) >= memFileBuffer {
						mt.obuf = mt.obuf[:0]
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(recs)), "ns/record")
		})
	}
}

// kernelRecords runs the kernel name with argument n under memtrace and
// returns the records its buffers held, as its encoder got them, with a
// memtrace that has the run's sites, none of them defined in a file yet.
func kernelRecords(b *testing.B, name, n string) ([]jit.TraceRecord, *memtrace) {
	tool, err := New("memtrace", []string{"file=" + filepath.Join(b.TempDir(), "trace")})
	if err != nil {
		b.Fatal(err)
	}
	mt := tool.state.(*memtrace)
	// An encoder that keeps the records instead.
	mt.stopEncoder()
	e := &memEncoder{queue: make(chan memQueued), done: make(chan struct{})}
	e.given.L = &e.mu
	var recs []jit.TraceRecord
	go func() {
		defer close(e.done)
		for batch := range e.queue {
			recs = append(recs, batch.recs...)
			e.release(batch.recs)
		}
	}()
	mt.enc = e
	func() {
		defer quiet(b)()
		runWithTool(b, tool, nil, kernelsProgram(b), name, n)
	}()
	return recs, &memtrace{sites: mt.sites, code: mt.code, tally: make([]memTally, len(mt.sites))}
}

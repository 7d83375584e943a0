//go:build linux && amd64

package jit

import (
	"strconv"
	"strings"
	"testing"
)

// sigBenchRun runs sig_bench natively (mode "native") or under reachvm in
// a child process, with vmcode low as reachvm run places it ("reachvm")
// or where the OS puts it ("reachvm-high", where RIP-relative operands
// out of rel32 reach go through inserted code), and returns the numbers
// it printed by name; lost is set when the program says no signal came.
func sigBenchRun(b *testing.B, mode string, args ...string) (vals map[string]float64, lost bool) {
	b.Helper()
	prog := buildProgram(b, "sig_bench", "exec")
	cmd := nativeCmd(prog, args...)
	if mode != "native" {
		cmd = reachvmCmd(prog, mode == "reachvm", args...)
	}
	out, stderr, st := runCmd(b, cmd)
	if st != (status{}) {
		b.Fatalf("sig_bench %v: %v, stderr %s", args, st, stderr)
	}
	if strings.TrimSpace(out) == "lost" {
		return nil, true
	}
	f := strings.Fields(out)
	vals = map[string]float64{}
	for i := 0; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i+1], 64)
		if err != nil {
			b.Fatalf("sig_bench %v printed %q", args, out)
		}
		vals[f[i]] = v
	}
	return vals, false
}

// BenchmarkSignalRaise times the round trip of a signal a program sends
// itself: kill(getpid(), SIGUSR1), the handler, rt_sigreturn; natively
// and under reachvm, in the same benchmark. The program measures its own
// loop (so process start-up is not counted): ns/op is per raise.
// Under reachvm a raise is two system-call exits (kill, rt_sigreturn),
// the emulated delivery, and the handler's and restorer's fragments.
func BenchmarkSignalRaise(b *testing.B) {
	var native float64
	for _, mode := range []string{"native", "reachvm"} {
		b.Run(mode, func(b *testing.B) {
			n := max(b.N, 1000)
			v, _ := sigBenchRun(b, mode, "raise", strconv.Itoa(n))
			ns := v["ns_per_raise"]
			if ns == 0 {
				b.Fatal("sig_bench printed no ns_per_raise")
			}
			b.ReportMetric(ns, "ns/op")
			if mode == "native" {
				native = ns
			} else if native != 0 {
				b.ReportMetric(ns/native, "x-native")
			}
		})
	}
}

// BenchmarkSignalDelay measures the delay from a POSIX timer's expiry to
// the SIGALRM handler's first instruction, the signal arriving in a busy
// loop that makes no system call: natively and under reachvm (vmcode low
// and high), 100 expiries 2 ms apart, once per call whatever b.N (ns/op
// is the mean delay). Under reachvm the real signal is caught by the
// signal layer, which brings the thread out of the code cache (single-
// stepping it out of inserted code) and posts it (Program.post); were it
// lost, the benchmark says so and skips.
func BenchmarkSignalDelay(b *testing.B) {
	var native float64
	for _, mode := range []string{"native", "reachvm", "reachvm-high"} {
		b.Run(mode, func(b *testing.B) {
			v, lost := sigBenchRun(b, mode, "delay", "100")
			if lost {
				b.Skip("the SIGALRM never reached the application")
			}
			b.ReportMetric(v["delay_ns_mean"], "ns/op")
			b.ReportMetric(v["delay_ns_max"], "max-ns")
			if mode == "native" {
				native = v["delay_ns_mean"]
			} else if native != 0 {
				b.ReportMetric(v["delay_ns_mean"]/native, "x-native")
			}
		})
	}
}

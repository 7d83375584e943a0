// Package bench measures reachability strategies and reachvm's speed against
// real peers. Nothing imports it but cmd/reachvm.
//
// The strategy harness turns DynamoRIO's issue #3570 discussion (its
// options A-F for Windows) and the Linux alternatives into numbers.
// The strategies themselves are library code, in package bench/strategy;
// this package only drives them: every strategy.Strategy goes through the
// same life cycle (set up a region, place libraries at init and after,
// unload, reload, tear down) on an mem.OS wrapped in a Counting
// decorator, so that the cost is measured at the OS boundary, with an
// intruder in its race windows. Layouts are pre-populated, seeded and
// ASLR-like, on the simulator; the same seed gives the same table. Here
// live the workloads (workload.go), the matrix and its backends
// (matrix.go, backend_*.go), the size and region sweeps (sweep.go) and
// the output: tables, CSV, JSON, Markdown and SVG plots (output.go,
// svg.go).
//
// The kernels benchmark (kernels.go) runs the C kernels of jit/kernels
// natively, under reachvm, under valgrind --tool=none and under
// qemu-x86_64, checks every tool's output against the native one, and
// reports each tool's time as a ratio to native in the same run, as a
// table, JSON and a bar chart drawn by the same SVG writer. The programs
// benchmark (programs*.go) does the same for real programs of the
// distribution on generated inputs, with /bin/true's start-up time and
// each run's peak RSS, measured by a small forking helper (jit/kernels'
// spawn program) since a child Go starts directly counts Go's own peak;
// a runner that cannot run a program is reported with its error.
package bench

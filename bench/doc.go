// Package bench measures reachability strategies and reachvm's speed against
// real peers. Nothing imports it but cmd/reachvm.
//
// The strategy harness (issue 6) turns DynamoRIO's #3570 discussion (seed
// 002, options A-F for Windows) and the Linux alternatives into numbers:
// every Strategy is driven through the same life cycle (set up a region,
// place libraries at init and after, unload, reload, tear down) on an
// osmem.OS wrapped in a Counting decorator, so that the cost is measured
// at the OS boundary. Layouts are pre-populated, seeded and ASLR-like, on
// the simulator; the same seed gives the same table. vmm-grid and
// vmm-linear drive the vmm package itself; A-F and the Linux strategies
// are written here on osmem, since vmm exposes only its own choice.
package bench

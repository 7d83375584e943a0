// Package strategy implements the ways of keeping client libraries and
// reachable file maps within rel32 reach of a code region that reachvm
// weighs, each behind one interface, Strategy.
//
// A dynamic binary instrumentation runtime emits code that calls into its
// client libraries and reads their data with rel32 displacements, so every
// byte of those libraries (and of the files it maps for emitted code,
// DynamoRIO's DR_MAP_CACHE_REACHABLE) must lie within 2 GiB (mem.Rel32Max) of
// every byte of the code region. A strategy decides where the region goes
// and where each library is mapped, during initialisation and after it,
// under the rules of one OS: on Windows a file view cannot be mapped over
// a reservation, so the range must be released first and lies free until
// the map, a race window; on Linux MAP_FIXED maps over one's own
// reservation without a window.
//
// DynamoRIO's design discussion of client library reachability lists six
// ways for Windows, each a type here:
//
//   - A: pick the range, load the libraries into it, reserve the pieces
//     around them; nothing can be placed after init.
//   - B: a region for code only; libraries go wherever the OS puts them,
//     with no reachability guarantee.
//   - C: libraries packed down from the top of the region at
//     non-preferred bases (each relocates), the rest reserved at the end
//     of init; nothing after init.
//   - D: a reservation every 640 KiB over the whole region; a library
//     releases a run of slots and maps there, at init or after.
//   - E: one reservation for the bulk plus a 64 MiB grid of 640 KiB slots
//     for libraries and reachable maps.
//   - F: a smaller region (512 MiB) and libraries placed outside it,
//     within reach of all of it (what DynamoRIO ships).
//
// and the Linux alternatives:
//
//   - LinuxFixed (linux-fixed): one reservation, libraries mapped over it
//     with MAP_FIXED; no race window.
//   - LinuxMunmap (linux-munmap): munmap a piece of the reservation, then
//     map; racy.
//   - LinuxNear (linux-near): no region, each library placed near one
//     code allocation (Frida's gum_memory_allocate_near).
//   - LinuxSpill (linux-spill): DynamoRIO's Linux behaviour, MAP_FIXED
//     inside the region and a spill to anywhere once it is full.
//
// VMM runs the vmm package itself as a strategy: vmm-grid (D, under
// Windows rules) and vmm-linear (linux-fixed, under Linux rules), so that
// what is measured is the code that ships. reachvm's defaults follow the
// measurements of docs/strategies.md, which package bench and
// `reachvm strategies` produce by driving every Strategy through the same
// life cycle on a simulated address space, the Linux kernel and Wine.
//
// New returns a strategy by name with default sizes; the types themselves
// take other sizes.
//
// # OS memory calls
//
// Elsewhere in reachvm only vmm makes OS memory calls. The strategies are
// the exception, by design: they are the code under measurement, and what
// bench measures is exactly the OS calls each one makes and the race
// windows it opens. So every strategy reserves, maps and releases memory
// itself, through the mem.OS it is set up on (which bench wraps in a
// counting decorator), and reports its race windows to an intruder hook
// (SetIntruder), so that a harness can count both. The package sits just
// under bench, above vmm and everything it builds on; vmm does not import
// it.
//
// # Near search
//
// F and linux-near place each library with their own near search
// (nearSearch) rather than vmm's placement (mem.NearWindow bounded by
// aspacem's advice): they model Frida's gum_memory_allocate_near and
// DynamoRIO's search-from-OS, which ask the OS (VirtualQuery,
// /proc/self/maps) for free holes on every placement and race other
// threads for them, and that query-then-map cost and its race window are
// what the matrix measures. Using vmm's placement, which consults a
// segment map kept in step with the process, would measure a different
// strategy. The window of acceptable addresses is still the one rule of
// reach, mem.NearWindow.
package strategy

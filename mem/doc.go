// Package mem is reachvm's public vocabulary for memory: the words every
// other package's signatures are written in, and nothing that changes the
// address space by itself.
//
//   - Prot, the protection of a page;
//   - Range, an address range [Start, End), with overflow-checked
//     constructors and set operations;
//   - AlignUp, AlignDown and Aligned, for pages (PageSize) and allocation
//     granules (4 KiB on Linux, GranularityWindows on Windows);
//   - the rel32 reach rule (Reachable, ReachesAll) that the whole project
//     exists to guarantee;
//   - the OS memory interface (OS, Region, Object and their errors) that
//     reachvm's backends implement. The backends themselves are internal:
//     a caller reaches them only through package vmm, which owns every
//     mapping reachvm makes and records it in package aspacem.
//
// It imports nothing of reachvm's and is imported by every package of it,
// the way gVisor's hostarch serves its mm.
package mem

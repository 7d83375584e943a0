// Package layers holds reachvm's structural checks, as tests run by
// `go test ./...`:
//
//   - layers_test.go: every package imports only floors below its own
//     (cmd; bench; jit and privload; vmcode; vmm; aspacem; the internal OS
//     backends; mem), only vmm makes OS memory calls through
//     internal/osmem, only aspacem reads the kernel's map through
//     internal/procmaps, and no public package's documentation (go doc
//     -all) names an internal package.
//   - outside_test.go: a separate module under testdata/outside builds
//     and runs a program against the public API, as a user's module would,
//     so that a regression of the public surface fails the tests.
//
// The tests run on Linux, where the go command is (they run it); the
// layering check reads both the Linux and the Windows build of every
// package. The package has no code of its own.
package layers

// Package cgotest holds the C functions internal/native's tests and
// benchmarks call, and the cgo calls of them that are the baseline a
// private call is measured against: a _test.go file cannot import "C".
// The functions are compiled into the test binary by cgo, so the private
// call and the cgo call run the same machine code.
//
// Without cgo the package is empty and Available is false.
package cgotest

//go:build !(cgo && linux)

package cgotest

// Available reports whether the package was built with cgo.
const Available = false

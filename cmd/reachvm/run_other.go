//go:build !(linux && amd64)

package main

import (
	"fmt"
	"io"
)

// execRun exists on linux/amd64 only, where the translator does.
func execRun(o *runOptions, argv []string, stderr io.Writer) int {
	fmt.Fprintln(stderr, "reachvm run: the translator runs on linux/amd64 only")
	return 1
}

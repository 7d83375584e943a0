//go:build !(linux && amd64)

package main

import (
	"fmt"
	"io"
)

// cmdRun exists on linux/amd64 only, where the translator does.
func cmdRun(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "reachvm run: the translator runs on linux/amd64 only")
	return 2
}

// cmdBench exists on linux/amd64 only.
func cmdBench(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "reachvm bench: linux/amd64 only")
	return 2
}

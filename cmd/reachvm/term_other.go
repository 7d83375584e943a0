//go:build !linux && !windows

package main

// isTerminal is false where reachvm has no way to ask: no progress bar.
func isTerminal(fd uintptr) bool { return false }

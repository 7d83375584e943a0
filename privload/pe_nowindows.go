//go:build !windows

package privload

// peState is Library.pe off Windows: no loader makes PE libraries there.
type peState struct{}

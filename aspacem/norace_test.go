//go:build !race

package aspacem

const raceEnabled = false

//go:build !race

package privload

const raceEnabled = false

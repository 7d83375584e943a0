// Package hostfd keeps reachvm's own descriptors out of a translated
// program's way. The program shares the process's descriptor table, and
// its opens take the lowest free numbers: descriptors reachvm keeps for
// the whole run live high, where programs seldom reach.
package hostfd

import "golang.org/x/sys/unix"

// floors are where a high copy is tried, highest first: a process whose
// descriptor limit is below 1000 still gets one above the usual numbers.
var floors = [...]int{1000, 100, 10}

// DupHigh returns a close-on-exec copy of fd at the lowest free number
// from the first floor that has one, or an error if none has.
func DupHigh(fd int) (int, error) {
	var err error
	for _, low := range floors {
		var hi int
		if hi, err = unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, low); err == nil {
			return hi, nil
		}
	}
	return -1, err
}

// MoveHigh moves fd, which the caller owns, to a high number with
// DupHigh and closes the old one. It returns the descriptor to use: fd
// itself when it is high already or no copy could be made.
func MoveHigh(fd int) int {
	if fd >= floors[len(floors)-1] {
		return fd
	}
	hi, err := DupHigh(fd)
	if err != nil {
		return fd
	}
	unix.Close(fd)
	return hi
}

package hostfd

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestMoveHigh(t *testing.T) {
	fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	hi := MoveHigh(fd)
	defer unix.Close(hi)
	if hi < 1000 {
		t.Fatalf("moved to %d, want 1000 or above", hi)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != unix.EBADF {
		t.Fatalf("the old descriptor %d is still open (%v)", fd, err)
	}
	if flags, err := unix.FcntlInt(uintptr(hi), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Fatalf("the copy is not close-on-exec: %#x, %v", flags, err)
	}
	if again := MoveHigh(hi); again != hi {
		t.Fatalf("a high descriptor moved again, to %d", again)
	}
}

func TestDupHighKeepsTheOriginal(t *testing.T) {
	hi, err := DupHigh(2)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(hi)
	if hi < 1000 {
		t.Fatalf("copy at %d, want 1000 or above", hi)
	}
	if _, err := unix.FcntlInt(2, unix.F_GETFD, 0); err != nil {
		t.Fatalf("descriptor 2 closed: %v", err)
	}
}

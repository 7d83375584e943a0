package jit

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// The calls with which a C library registers a thread's addresses with
// the kernel. The OS thread that runs the program is Go's and outlives
// it, and the kernel acts on these addresses when that thread exits (it
// clears the tid word and wakes it; it walks the robust list): passed
// through, they would make the kernel write into the program's memory
// long after the run, when it may be something else. So they are kept in
// the program's thread state and answered as the kernel answers them.

// threadID is what a thread registered with set_tid_address and
// set_robust_list.
type threadID struct {
	// clearTID is set_tid_address's address, written 0 and woken when
	// the thread ends (CLONE_CHILD_CLEARTID's too: thread.finish).
	clearTID uintptr
	// robustHead and robustLen are set_robust_list's arguments.
	robustHead, robustLen uintptr
}

// robustListHeadSize is sizeof(struct robust_list_head) on x86-64, the
// only length set_robust_list accepts.
const robustListHeadSize = 24

// threadIDCall emulates set_tid_address, set_robust_list and
// get_robust_list for the calling thread, and fails rseq with ENOSYS, as
// DynamoRIO and Valgrind do: a restartable sequence registered with the
// kernel would have the kernel move the thread's instruction pointer to
// an abort handler in the application's code while it runs in the cache.
// glibc then runs without rseq (sched_getcpu makes a system call).
func (t *thread) threadIDCall(nr uint64, a [6]uintptr) (ret uint64, handled bool) {
	th := &t.id
	switch nr {
	case unix.SYS_SET_TID_ADDRESS:
		th.clearTID = a[0]
		return uint64(t.tid), true
	case unix.SYS_SET_ROBUST_LIST:
		if a[1] != robustListHeadSize {
			return errno(unix.EINVAL), true
		}
		th.robustHead, th.robustLen = a[0], a[1]
		return 0, true
	case unix.SYS_GET_ROBUST_LIST:
		if a[0] != 0 {
			// Another thread's: the kernel's answer.
			return 0, false
		}
		var b [16]byte
		binary.LittleEndian.PutUint64(b[0:], uint64(th.robustHead))
		binary.LittleEndian.PutUint64(b[8:], uint64(th.robustLen))
		if !t.copyOut(a[1], b[:8]) || !t.copyOut(a[2], b[8:]) {
			return errno(unix.EFAULT), true
		}
		return 0, true
	case unix.SYS_RSEQ:
		return errno(unix.ENOSYS), true
	}
	return 0, false
}

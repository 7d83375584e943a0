package jit

import (
	"encoding/binary"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/internal/rawmem"
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

// Robust futexes. A thread that ends holding a robust mutex (glibc's
// PTHREAD_MUTEX_ROBUST) has the kernel mark it: every futex word on the
// thread's robust list, and the one its list_op_pending names, whose
// owner is the thread gets FUTEX_OWNER_DIED, and a waiter is woken, whose
// pthread_mutex_lock then returns EOWNERDEAD. The list is the program's,
// kept by set_robust_list above, so reachvm walks it when the thread
// ends, as the kernel's exit_robust_list does: without it the next
// locker waits forever.
const (
	futexWaiters    = 0x80000000
	futexOwnerDied  = 0x40000000
	futexTIDMask    = 0x3fffffff
	robustListLimit = 2048
	futexWake       = 1
)

// exitRobustList walks t's robust list (struct robust_list_head: the
// list's first entry, the futex word's offset from an entry, the pending
// entry; bit 0 of an entry marks a PI futex) as the kernel does at the
// thread's exit, stopping at an unreadable entry.
//
// Preconditions: t has ended; nothing runs it.
func (t *thread) exitRobustList() {
	head := t.id.robustHead
	if head == 0 {
		return
	}
	var b [robustListHeadSize]byte
	if !copyIn(head, b[:]) {
		return
	}
	le := binary.LittleEndian
	entry := uintptr(le.Uint64(b[0:]))
	off := uintptr(le.Uint64(b[8:]))
	pending := uintptr(le.Uint64(b[16:]))
	pi, pendingPI := entry&1 != 0, pending&1 != 0
	entry &^= 1
	pending &^= 1
	for limit := robustListLimit; entry != head; {
		var nb [8]byte
		ok := copyIn(entry, nb[:])
		if entry != pending {
			t.futexDeath(entry+off, pi, false)
		}
		if !ok {
			return
		}
		next := uintptr(le.Uint64(nb[:]))
		entry, pi = next&^1, next&1 != 0
		if limit--; limit == 0 {
			break
		}
	}
	if pending != 0 {
		t.futexDeath(pending+off, pendingPI, true)
	}
}

// futexDeath is the kernel's handle_futex_death for the futex word at
// uaddr: if t owns it, it gets FUTEX_OWNER_DIED (keeping FUTEX_WAITERS)
// and, for a non-PI futex with waiters, one is woken; a pending non-PI
// futex nobody owns has a waiter woken too (the thread died between
// releasing it and waking).
func (t *thread) futexDeath(uaddr uintptr, pi, pending bool) {
	if uaddr&3 != 0 || uaddr == 0 {
		return
	}
	t.willWrite(uaddr, 4)
	// A bounded number of tries: another thread may change the word
	// between the read and the swap, as the kernel's loop allows.
	for range 64 {
		var uval uint32
		if !userAccess(func() { uval = get32(uaddr) }) {
			return
		}
		owner := uval & futexTIDMask
		if pending && !pi && owner == 0 {
			unix.RawSyscall6(unix.SYS_FUTEX, uaddr, futexWake, 1, 0, 0, 0)
			return
		}
		if owner != uint32(t.tid) {
			return
		}
		mval := uval&futexWaiters | futexOwnerDied
		swapped := false
		if !userAccess(func() { swapped = atomic.CompareAndSwapUint32((*uint32)(rawmem.Ptr(uaddr)), uval, mval) }) {
			return
		}
		if swapped {
			if !pi && uval&futexWaiters != 0 {
				unix.RawSyscall6(unix.SYS_FUTEX, uaddr, futexWake, 1, 0, 0, 0)
			}
			return
		}
	}
}

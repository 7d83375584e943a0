package jit

import (
	"encoding/binary"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/jit/internal/amd64"
	"github.com/reachvm/reachvm/jit/internal/sigtramp"
)

// A program's signal system calls, emulated on its signal state
// (signal_linux_amd64.go) with the kernel's checks and errors:
// rt_sigaction, rt_sigprocmask, sigaltstack, rt_sigreturn, rt_sigpending,
// rt_sigsuspend, pause, rt_sigtimedwait, and kill, tkill, tgkill,
// rt_sigqueueinfo and rt_tgsigqueueinfo when they signal the program
// itself (its process, its process group, its thread). Signals for other
// processes go to the kernel as they are; a process-group signal reaches
// the group's other members through the kernel too. SIGKILL and SIGSTOP,
// which nothing can catch, block or ignore, always go to the kernel.
// alarm, setitimer and the POSIX timers go to the kernel: the real signal
// then comes through the signal layer (Program.post).

// signalCall performs the signal system call nr (arguments a) at pc and
// returns where the application goes on; done is false for a call it
// leaves to the kernel.
//
// Preconditions: the machine runs p (Program.Run).
func (t *thread) signalCall(nr uint64, a [6]uintptr, pc uintptr) (next uintptr, done bool) {
	var ret uint64
	switch nr {
	case unix.SYS_RT_SIGACTION:
		ret = t.sysSigaction(int32(a[0]), a[1], a[2], a[3])
	case unix.SYS_RT_SIGPROCMASK:
		ret = t.sysSigprocmask(int32(a[0]), a[1], a[2], a[3])
	case unix.SYS_SIGALTSTACK:
		ret = t.sysSigaltstack(a[0], a[1])
	case unix.SYS_RT_SIGRETURN:
		return t.sigreturn(pc), true
	case unix.SYS_RT_SIGPENDING:
		ret = t.sysSigpending(a[0], a[1])
	case unix.SYS_RT_SIGSUSPEND:
		ret = t.sysSigsuspend(a[0], a[1], nr, pc)
	case unix.SYS_PAUSE:
		ret = t.sysPause(nr, pc)
	case unix.SYS_RT_SIGTIMEDWAIT:
		ret = t.sysSigtimedwait(a[0], a[1], a[2], a[3])
	case unix.SYS_KILL:
		r, ok := t.sysKill(int32(a[0]), int32(a[1]))
		if !ok {
			return 0, false
		}
		ret = r
	case unix.SYS_TKILL, unix.SYS_TGKILL:
		tgid, tid, sig := int32(0), int32(a[0]), int32(a[1])
		if nr == unix.SYS_TGKILL {
			tgid, tid, sig = int32(a[0]), int32(a[1]), int32(a[2])
		}
		r, ok := t.sysTkill(nr == unix.SYS_TGKILL, tgid, tid, sig, nil)
		if !ok {
			return 0, false
		}
		ret = r
	case unix.SYS_RT_SIGQUEUEINFO, unix.SYS_RT_TGSIGQUEUEINFO:
		r, ok := t.sysSigqueueinfo(nr == unix.SYS_RT_TGSIGQUEUEINFO, a)
		if !ok {
			return 0, false
		}
		ret = r
	default:
		return 0, false
	}
	return t.m.sysret(pc, ret), true
}

// readSigset reads a sigset_t of the application's.
func readSigset(a uintptr) (uint64, bool) {
	var b [8]byte
	if !copyIn(a, b[:]) {
		return 0, false
	}
	return binary.LittleEndian.Uint64(b[:]), true
}

// writeSigset writes a sigset_t for the application.
func (t *thread) writeSigset(a uintptr, set uint64) bool {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], set)
	return t.copyOut(a, b[:])
}

// sysSigaction is rt_sigaction(sig, act, oact, sigsetsize).
func (t *thread) sysSigaction(sig int32, act, oact, size uintptr) uint64 {
	if size != 8 {
		return errno(unix.EINVAL)
	}
	if sig < 1 || sig > nsig || (act != 0 && sigBit(unix.Signal(sig))&unblockable != 0) {
		return errno(unix.EINVAL)
	}
	var nw sigAction
	if act != 0 {
		var b [32]byte
		if !copyIn(act, b[:]) {
			return errno(unix.EFAULT)
		}
		nw = sigAction{
			handler:  uintptr(binary.LittleEndian.Uint64(b[0:])),
			flags:    binary.LittleEndian.Uint64(b[8:]) & saUAPI,
			restorer: uintptr(binary.LittleEndian.Uint64(b[16:])),
			mask:     binary.LittleEndian.Uint64(b[24:]) &^ unblockable,
		}
	}
	s := &t.p.sig
	s.mu.Lock()
	old := s.actions[sig-1]
	if act != 0 {
		s.actions[sig-1] = nw
		// POSIX: ignoring a pending signal discards it, blocked or not.
		if nw.ignores(unix.Signal(sig)) {
			s.shared.flush(sigBit(unix.Signal(sig)))
			for _, o := range s.threads {
				o.sig.pending.flush(sigBit(unix.Signal(sig)))
				o.recalcLocked()
			}
		}
	}
	s.mu.Unlock()
	if act != 0 && sig == int32(unix.SIGCHLD) {
		t.p.childWait(&nw)
	}
	if oact != 0 {
		var b [32]byte
		binary.LittleEndian.PutUint64(b[0:], uint64(old.handler))
		binary.LittleEndian.PutUint64(b[8:], old.flags)
		binary.LittleEndian.PutUint64(b[16:], uint64(old.restorer))
		binary.LittleEndian.PutUint64(b[24:], old.mask)
		if !t.copyOut(oact, b[:]) {
			return errno(unix.EFAULT)
		}
	}
	return 0
}

// childWait makes the kernel reap the process's children itself while
// SIGCHLD's action act ignores it or has SA_NOCLDWAIT, as it does for the
// native program (the real action is the signal layer's, which the
// kernel otherwise judges by); the children then never wait to be reaped,
// and wait fails with ECHILD once none is left. SIGCHLD still reaches the
// signal layer, and the emulation drops it when ignored.
func (p *Program) childWait(act *sigAction) {
	// The layer keeps its handler whatever happens: an error here only
	// leaves children for wait to reap.
	_ = sigtramp.NoChildWait(act.handler == sigIGN || act.flags&saNoCldWait != 0)
}

// sysSigprocmask is rt_sigprocmask(how, set, oset, sigsetsize).
func (t *thread) sysSigprocmask(how int32, set, oset, size uintptr) uint64 {
	if size != 8 {
		return errno(unix.EINVAL)
	}
	s := &t.p.sig
	s.mu.Lock()
	old := t.sig.mask
	s.mu.Unlock()
	if set != 0 {
		nw, ok := readSigset(set)
		if !ok {
			return errno(unix.EFAULT)
		}
		s.mu.Lock()
		switch how {
		case unix.SIG_BLOCK:
			t.setMaskLocked(t.sig.mask | nw)
		case unix.SIG_UNBLOCK:
			t.setMaskLocked(t.sig.mask &^ nw)
		case unix.SIG_SETMASK:
			t.setMaskLocked(nw)
		default:
			s.mu.Unlock()
			return errno(unix.EINVAL)
		}
		s.mu.Unlock()
	}
	if oset != 0 && !t.writeSigset(oset, old) {
		return errno(unix.EFAULT)
	}
	return 0
}

// sysSigaltstack is sigaltstack(ss, oss), at the application's stack
// pointer.
func (t *thread) sysSigaltstack(ss, oss uintptr) uint64 {
	var nw [24]byte
	if ss != 0 && !copyIn(ss, nw[:]) {
		return errno(unix.EFAULT)
	}
	sp := uintptr(t.m.reg(amd64.RSP))
	s := &t.p.sig
	s.mu.Lock()
	alt := t.sig.alt
	var e unix.Errno
	if ss != 0 {
		e = t.setAltStackLocked(uintptr(binary.LittleEndian.Uint64(nw[ssSP:])), binary.LittleEndian.Uint32(nw[ssFlags:]),
			uintptr(binary.LittleEndian.Uint64(nw[ssSize:])), sp)
	}
	s.mu.Unlock()
	if e != 0 {
		return errno(e)
	}
	if oss != 0 {
		var b [24]byte
		binary.LittleEndian.PutUint64(b[ssSP:], uint64(alt.sp))
		binary.LittleEndian.PutUint32(b[ssFlags:], alt.state(sp)|alt.flags&ssAutoDisarm)
		binary.LittleEndian.PutUint64(b[ssSize:], uint64(alt.size))
		if !t.copyOut(oss, b[:]) {
			return errno(unix.EFAULT)
		}
	}
	return 0
}

// sysSigpending is rt_sigpending(set, sigsetsize): the pending signals
// the thread blocks, sigsetsize bytes of them.
func (t *thread) sysSigpending(set, size uintptr) uint64 {
	if size > 8 {
		return errno(unix.EINVAL)
	}
	s := &t.p.sig
	s.mu.Lock()
	pending := t.pendingLocked() & t.sig.mask
	s.mu.Unlock()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], pending)
	if !t.copyOut(set, b[:size]) {
		return errno(unix.EFAULT)
	}
	return 0
}

// sysSigsuspend is rt_sigsuspend(set, sigsetsize) at pc: the thread
// waits with set as its mask until a signal it then takes is pending;
// its handler runs with that mask in place (the frame saves the old one,
// which comes back after it), and the call fails with EINTR; with no
// handler the call restarts.
func (t *thread) sysSigsuspend(set, size uintptr, nr uint64, pc uintptr) uint64 {
	if size != 8 {
		return errno(unix.EINVAL)
	}
	nw, ok := readSigset(set)
	if !ok {
		return errno(unix.EFAULT)
	}
	nw &^= unblockable
	s := &t.p.sig
	s.mu.Lock()
	t.sig.savedMask = t.sig.mask
	t.sig.mask = nw
	t.sig.restoreMask = true
	t.recalcLocked()
	s.mu.Unlock()
	t.waitSignal(^nw, time.Time{})
	return t.interruptedBy(nr, pc, restartNoHandler)
}

// sysPause is pause at pc: it waits until a signal the thread takes is
// pending and fails with EINTR once its handler ran, or restarts.
func (t *thread) sysPause(nr uint64, pc uintptr) uint64 {
	s := &t.p.sig
	s.mu.Lock()
	mask := t.sig.mask
	s.mu.Unlock()
	t.waitSignal(^mask, time.Time{})
	return t.interruptedBy(nr, pc, restartNoHandler)
}

// interruptedBy records the call nr at pc as interrupted, to be
// restarted as kind says, and returns -EINTR.
func (t *thread) interruptedBy(nr uint64, pc uintptr, kind restartKind) uint64 {
	s := &t.p.sig
	s.mu.Lock()
	t.sig.restart = sysRestart{active: true, kind: kind, nr: nr, pc: pc}
	t.recalcLocked()
	s.mu.Unlock()
	return errno(unix.EINTR)
}

// sysSigtimedwait is rt_sigtimedwait(set, info, timeout, sigsetsize):
// it takes a pending signal of set (blocked or not) and returns it, its
// siginfo in info; if none is pending, it waits for one up to timeout
// (for ever without one; EAGAIN at its end), the signals of set
// unblocked meanwhile. Another signal the thread takes ends the wait
// with EINTR.
func (t *thread) sysSigtimedwait(set, info, timeout, size uintptr) uint64 {
	if size != 8 {
		return errno(unix.EINVAL)
	}
	these, ok := readSigset(set)
	if !ok {
		return errno(unix.EFAULT)
	}
	var deadline time.Time
	wait := true
	if timeout != 0 {
		var ts [16]byte
		if !copyIn(timeout, ts[:]) {
			return errno(unix.EFAULT)
		}
		sec, nsec := int64(binary.LittleEndian.Uint64(ts[0:])), int64(binary.LittleEndian.Uint64(ts[8:]))
		if sec < 0 || nsec < 0 || nsec >= 1e9 {
			return errno(unix.EINVAL)
		}
		d := time.Duration(1 << 62)
		if sec < int64(d/time.Second) {
			d = time.Duration(sec)*time.Second + time.Duration(nsec)
		}
		wait = d > 0
		deadline = time.Now().Add(d)
	}
	these &^= unblockable
	s := &t.p.sig
	take := func() (sigEntry, bool) {
		s.mu.Lock()
		defer s.mu.Unlock()
		var e sigEntry
		if own := t.sig.pending.set & these; own != 0 {
			e = t.sig.pending.take(nextSignal(own))
		} else if shared := s.shared.set & these; shared != 0 {
			e = s.shared.take(nextSignal(shared))
		} else {
			return e, false
		}
		t.recalcLocked()
		return e, true
	}
	e, got := take()
	if !got && wait {
		s.mu.Lock()
		mask := t.sig.mask
		s.mu.Unlock()
		t.waitSignal(these|^mask, deadline)
		e, got = take()
		if !got {
			s.mu.Lock()
			interrupted := t.pendingLocked()&^t.sig.mask != 0
			s.mu.Unlock()
			if interrupted {
				return errno(unix.EINTR)
			}
		}
	}
	if !got {
		return errno(unix.EAGAIN)
	}
	if info != 0 && !t.copyOut(info, e.info[:]) {
		return errno(unix.EFAULT)
	}
	return uint64(e.info.Signo())
}

// checkSignal returns EINVAL for a signal number kill refuses, and
// whether there is a signal to send (0 only checks).
func checkSignal(sig int32) (unix.Errno, bool) {
	if sig < 0 || sig > nsig {
		return unix.EINVAL, false
	}
	return 0, sig != 0
}

// sysKill is kill(pid, sig) when it concerns the program's process:
// pid is its own, 0 (its group) or minus its group. The signal is queued
// for the process with the siginfo the kernel builds (SI_USER, the
// sender's pid and uid), and sent to the group's other members through
// the kernel. ok is false for a call the kernel makes as it is.
func (t *thread) sysKill(pid, sig int32) (ret uint64, ok bool) {
	s := &t.p.sig
	self := pid == int32(s.pid)
	group := pid == 0 || (pid < -1 && -pid == int32(s.pgrp))
	if !self && !group {
		return 0, false
	}
	e, send := checkSignal(sig)
	if e != 0 {
		return errno(e), true
	}
	if send && sigBit(unix.Signal(sig))&unblockable != 0 {
		return 0, false
	}
	if group {
		signalGroup(s.pgrp, s.pid, unix.Signal(sig))
	}
	if !send {
		return 0, true
	}
	info := newSigInfo(unix.Signal(sig), siUser)
	info.setSender(s.pid, s.uid)
	s.mu.Lock()
	t.p.sendLocked(&sigEntry{info: info}, nil, t)
	s.mu.Unlock()
	return 0, true
}

// sysTkill is tgkill(tgid, tid, sig) (withTgid) or tkill(tid, sig) when
// tid is one of the program's threads: the signal is queued for that
// thread (SI_TKILL, the sender's pid and uid), or with the siginfo info
// of rt_tgsigqueueinfo. A thread answers to its own id (gettid), and the
// main thread to the process id too, which the native program's has.
// Another thread of reachvm's own process does not exist for the
// program: ESRCH. ok is false for a call the kernel makes as it is.
func (t *thread) sysTkill(withTgid bool, tgid, tid, sig int32, info *SigInfo) (ret uint64, ok bool) {
	s := &t.p.sig
	if tid <= 0 || (withTgid && tgid <= 0) {
		return errno(unix.EINVAL), true
	}
	if withTgid && tgid != int32(s.pid) {
		return 0, false
	}
	if !t.p.isThread(int(tid)) {
		if _, err := os.Stat("/proc/self/task/" + strconv.Itoa(int(tid))); err == nil {
			return errno(unix.ESRCH), true
		}
		return 0, false
	}
	if info != nil {
		return t.queueSignal(sig, *info, tid, true)
	}
	si := newSigInfo(unix.Signal(sig), siTkill)
	si.setSender(s.pid, s.uid)
	return t.queueSignal(sig, si, tid, false)
}

// queueSignal is what tkill, tgkill and rt_(tg)sigqueueinfo do once the
// target is the program: sig checked as kill checks it (0 only checks),
// SIGKILL and SIGSTOP left to the kernel (ok false), and info queued for
// the program's thread tid, or the process for 0 (ESRCH if that thread
// ended meanwhile; nothing for the main thread's ended one, which the
// process id still names). A signal the full queue refuses fails with
// EAGAIN if eagain (the application's own siginfo), and is dropped as the
// kernel's own siginfo would be otherwise.
func (t *thread) queueSignal(sig int32, info SigInfo, tid int32, eagain bool) (ret uint64, ok bool) {
	e, send := checkSignal(sig)
	if e != 0 {
		return errno(e), true
	}
	if !send {
		return 0, true
	}
	if sigBit(unix.Signal(sig))&unblockable != 0 {
		return 0, false
	}
	s := &t.p.sig
	s.mu.Lock()
	var to *thread
	if tid != 0 {
		if to = t.p.threadLocked(int(tid)); to == nil {
			s.mu.Unlock()
			if tid == int32(s.pid) {
				return 0, true
			}
			return errno(unix.ESRCH), true
		}
	}
	queued := t.p.sendLocked(&sigEntry{info: info}, to, t)
	s.mu.Unlock()
	if !queued && eagain {
		return errno(unix.EAGAIN), true
	}
	return 0, true
}

// sysSigqueueinfo is rt_sigqueueinfo(tgid, sig, info) or
// rt_tgsigqueueinfo(tgid, tid, sig, info) (toThread) for the program
// itself: the application's siginfo, si_signo set to sig.
func (t *thread) sysSigqueueinfo(toThread bool, a [6]uintptr) (ret uint64, ok bool) {
	s := &t.p.sig
	tgid, tid, sig, uinfo := int32(a[0]), int32(0), int32(a[1]), a[2]
	if toThread {
		tid, sig, uinfo = int32(a[1]), int32(a[2]), a[3]
	}
	if tgid != int32(s.pid) {
		return 0, false
	}
	var info SigInfo
	if !copyIn(uinfo, info[:]) {
		return errno(unix.EFAULT), true
	}
	binary.LittleEndian.PutUint32(info[0:], uint32(sig))
	if toThread {
		return t.sysTkill(true, tgid, tid, sig, &info)
	}
	return t.queueSignal(sig, info, 0, true)
}

// signalGroup sends sig to the members of process group pgrp other than
// the process self, through pidfds: a pid is opened, checked to still be
// in the group, and signalled through its pidfd, so that a pid reused
// meanwhile is never signalled. Errors are the kernel's business: kill
// of a group succeeds when one member (here the program) was signalled.
func signalGroup(pgrp, self int, sig unix.Signal) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == self || pgrpOf(pid) != pgrp {
			continue
		}
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			continue
		}
		if pgrpOf(pid) == pgrp {
			_ = unix.PidfdSendSignal(fd, sig, nil, 0)
		}
		unix.Close(fd)
	}
}

// pgrpOf returns the process group of pid, or -1.
func pgrpOf(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	// pid (comm) state ppid pgrp ...: comm may hold anything, ')' too.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 3 {
		return -1
	}
	g, err := strconv.Atoi(f[2])
	if err != nil {
		return -1
	}
	return g
}

// interrupted records that the system call nr (arguments a) at pc,
// which the kernel performed, failed with EINTR, and reports whether the
// EINTR is the application's: if a signal is pending for the thread
// that it does not block, the delivery decides whether the call restarts
// (restartOf). Otherwise no signal of the application's interrupted the
// call natively (the signal was ignored, blocked, Go's, or a kick), and
// false says to make it again.
func (t *thread) interrupted(nr uint64, a [6]uintptr, pc uintptr) bool {
	ready := t.ready()
	if ready {
		t.interruptedBy(nr, pc, restartOf(nr, a))
	}
	return ready
}

// ready reports whether a signal the thread does not block is pending for
// it.
func (t *thread) ready() bool {
	s := &t.p.sig
	s.mu.Lock()
	defer s.mu.Unlock()
	return t.pendingLocked()&^t.sig.mask != 0
}

// restartOf says how the kernel restarts the call nr (arguments a) that
// a signal interrupted, as signal(7) lists them: the calls SA_RESTART
// restarts (ERESTARTSYS: reads and writes, ioctl, open, wait, socket
// calls on sockets without a timeout, flock and blocking fcntl locks,
// message queues, futex waits, getrandom), those restarted only when no
// handler runs (the waits and sleeps), and the rest, which fail with
// EINTR.
func restartOf(nr uint64, a [6]uintptr) restartKind {
	const (
		fSetLKW    = 7
		fOFDSetLKW = 38
		// futex operations (the command bits of op).
		futexCmd         = 0x7f
		futexWait        = 0
		futexLockPI      = 6
		futexWaitBitset  = 9
		futexWaitRequeue = 11
	)
	switch nr {
	case unix.SYS_READ, unix.SYS_READV, unix.SYS_PREAD64, unix.SYS_PREADV, unix.SYS_PREADV2,
		unix.SYS_RECVFROM, unix.SYS_RECVMSG, unix.SYS_ACCEPT, unix.SYS_ACCEPT4:
		if sockTimeout(int(a[0]), unix.SO_RCVTIMEO) {
			return restartNever
		}
		return restartSys
	case unix.SYS_RECVMMSG:
		if a[4] != 0 || sockTimeout(int(a[0]), unix.SO_RCVTIMEO) {
			return restartNever
		}
		return restartSys
	case unix.SYS_WRITE, unix.SYS_WRITEV, unix.SYS_PWRITE64, unix.SYS_PWRITEV, unix.SYS_PWRITEV2,
		unix.SYS_SENDTO, unix.SYS_SENDMSG, unix.SYS_SENDMMSG, unix.SYS_CONNECT:
		if sockTimeout(int(a[0]), unix.SO_SNDTIMEO) {
			return restartNever
		}
		return restartSys
	case unix.SYS_IOCTL, unix.SYS_OPEN, unix.SYS_OPENAT, unix.SYS_OPENAT2, unix.SYS_CREAT,
		unix.SYS_WAIT4, unix.SYS_WAITID, unix.SYS_FLOCK, unix.SYS_MQ_TIMEDRECEIVE, unix.SYS_MQ_TIMEDSEND,
		unix.SYS_GETRANDOM, unix.SYS_SENDFILE, unix.SYS_SPLICE, unix.SYS_TEE, unix.SYS_COPY_FILE_RANGE:
		return restartSys
	case unix.SYS_FCNTL:
		if c := int(a[1]); c == fSetLKW || c == fOFDSetLKW {
			return restartSys
		}
	case unix.SYS_FUTEX:
		switch a[1] & futexCmd {
		case futexWait:
			if a[3] != 0 {
				return restartNoHandler
			}
			return restartSys
		case futexWaitBitset, futexLockPI, futexWaitRequeue:
			return restartSys
		}
	case unix.SYS_PAUSE, unix.SYS_RT_SIGSUSPEND, unix.SYS_POLL, unix.SYS_PPOLL, unix.SYS_SELECT, unix.SYS_PSELECT6,
		unix.SYS_EPOLL_WAIT, unix.SYS_EPOLL_PWAIT, unix.SYS_EPOLL_PWAIT2, unix.SYS_NANOSLEEP, unix.SYS_CLOCK_NANOSLEEP,
		unix.SYS_MSGRCV, unix.SYS_MSGSND, unix.SYS_SEMOP, unix.SYS_SEMTIMEDOP, unix.SYS_IO_GETEVENTS, unix.SYS_IO_PGETEVENTS:
		return restartNoHandler
	}
	return restartNever
}

// sockTimeout reports whether fd is a socket with the timeout opt
// (SO_RCVTIMEO or SO_SNDTIMEO) set: the kernel's socket calls then fail
// with EINTR instead of restarting.
func sockTimeout(fd int, opt int) bool {
	tv, err := unix.GetsockoptTimeval(fd, unix.SOL_SOCKET, opt)
	return err == nil && (tv.Sec != 0 || tv.Usec != 0)
}

package jit

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/mem"
)

// execve by the program under translation (docs/ARCHITECTURE.md,
// section "Processes"). The new program replaces the process, reachvm
// with it: reachvm follows it when Options.Exec says how (the embedder
// knows how to start reachvm on a program; `reachvm run` execs itself),
// and otherwise the call goes to the kernel and the new program runs
// natively. Either way what the program observes is the kernel's: a
// call that fails (no such file, no permission, not an executable)
// returns the kernel's error and the program goes on, so the file is
// checked as the kernel checks it before reachvm execs anything, and
// the signal mask and the ignored signals, which survive execve, are
// the program's in the new image.

// ExecRequest is an execve that reachvm follows: the new program, to be
// run under reachvm as the old one was.
type ExecRequest struct {
	// Path is the executable to load: the file the program named, or
	// for a script (#!) its interpreter, resolved as the kernel
	// resolves it.
	Path string
	// Argv and Envp are the new program's arguments and environment,
	// exactly as the program passed them (argv[0] included); for a
	// script, the arguments as the kernel rewrites them: the
	// interpreter, its optional argument, the script's path, then the
	// program's argv[1:]. An empty argv is the kernel's: [""].
	Argv, Envp []string
	// Inherit is what the new program starts with from the old one
	// (Program.Inherit).
	Inherit Inherited
}

// Inherited is what a program starts with from the one that exec'd it,
// besides its arguments and environment.
type Inherited struct {
	// Mask is the signal mask and Ignored the signals set to SIG_IGN
	// (bit sig-1 each; SIGKILL and SIGSTOP left out): execve keeps
	// both.
	Mask, Ignored uint64
	// ExecFn is the path execve was given, which the auxiliary
	// vector's AT_EXECFN points to (a script's, where the program
	// loaded is its interpreter); "" for the program's own path.
	ExecFn string
}

// Inherit sets the state the program's next Run starts with, as execve
// leaves it. A Run without it starts with nothing blocked or ignored,
// and AT_EXECFN the program's path.
func (p *Program) Inherit(in Inherited) {
	p.sig.mu.Lock()
	defer p.sig.mu.Unlock()
	p.sig.initMask, p.sig.initIgnored = in.Mask&^unblockable, in.Ignored&^unblockable
	p.execFn = in.ExecFn
}

// Limits the kernel puts on execve's arguments (fs/exec.c).
const (
	// pathMax is PATH_MAX, a path's longest with its NUL.
	pathMax = 4096
	// maxArgStrlen is MAX_ARG_STRLEN, one argument's or environment
	// string's longest with its NUL.
	maxArgStrlen = 32 * 4096
	// argMax is ARG_MAX, the least room execve gives the strings and
	// pointers, stkLim the default stack limit (_STK_LIM), three
	// quarters of which is the most.
	argMax = 32 * 4096
	stkLim = 8 << 20
	// binprmBufSize is how much of the file the kernel reads to tell
	// its format (BINPRM_BUF_SIZE); maxInterpDepth how many
	// interpreters deep it goes.
	binprmBufSize  = 256
	maxInterpDepth = 4
)

// execve is execve(path, argv, envp) or execveat(dirfd, path, argv,
// envp, flags) at pc. On success it does not return; otherwise the
// application goes on after the call with the kernel's error.
//
// Preconditions: the machine runs p (Program.Run), on its locked thread.
func (p *Program) execve(t *thread, nr uint64, a [6]uintptr, pc uintptr) (uintptr, error) {
	m := t.m
	pathp, argvp, envpp := a[0], a[1], a[2]
	dirfd, flags := unix.AT_FDCWD, 0
	if nr == unix.SYS_EXECVEAT {
		dirfd, pathp, argvp, envpp, flags = int(int32(a[0])), a[1], a[2], a[3], int(int32(a[4]))
	}
	path, e := readCString(pathp, pathMax, unix.ENAMETOOLONG)
	if e == 0 && nr == unix.SYS_EXECVEAT {
		path, e = atPath(dirfd, path, flags)
	} else if e == 0 && path == "" {
		e = unix.ENOENT
	}
	if e == 0 {
		e = checkExec(path, flags&unix.AT_SYMLINK_NOFOLLOW != 0)
	}
	var argv, envp []string
	if e == 0 {
		argv, envp, e = readArgs(argvp, envpp, path)
	}
	if e != 0 {
		return m.sysret(pc, errno(e)), nil
	}
	mask, ignored := p.execSignals(t)
	if m.opts.Exec != nil {
		req, e := resolveExec(path, argv)
		if e != 0 {
			return m.sysret(pc, errno(e)), nil
		}
		if req != nil {
			req.Envp, req.Inherit = envp, Inherited{Mask: mask, Ignored: ignored}
			if req.Path != path {
				req.Inherit.ExecFn = path
			}
			if len(req.Argv) == 0 {
				req.Argv = []string{""}
			}
			xpath, xargv, xenvp := m.opts.Exec(req)
			err := unix.Exec(xpath, xargv, xenvp)
			// reachvm could not exec itself: the program's execve
			// fails with that error, as it would have failed had the
			// kernel refused the new program.
			var en unix.Errno
			if !errors.As(err, &en) {
				en = unix.ENOEXEC
			}
			return m.sysret(pc, errno(en)), nil
		}
	}
	return m.sysret(pc, errno(execNative(path, argv, envp, mask, ignored))), nil
}

// execSignals returns the mask of the program's thread t and the signals
// the program ignores (SIG_IGN), which execve keeps.
func (p *Program) execSignals(t *thread) (mask, ignored uint64) {
	s := &p.sig
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.actions {
		if s.actions[i].handler == sigIGN {
			ignored |= 1 << i
		}
	}
	return t.sig.mask, ignored
}

// readCString reads the NUL-terminated string at a of the application's
// memory, at most max bytes with its NUL: EFAULT if it cannot be read,
// long if it is longer.
func readCString(a uintptr, max int, long unix.Errno) (string, unix.Errno) {
	var buf []byte
	for len(buf) < max {
		n := min(int(mem.PageSize-a%mem.PageSize), max-len(buf))
		chunk := make([]byte, n)
		if a == 0 || !copyIn(a, chunk) {
			// Byte by byte up to the fault: a string may end just
			// before an unmapped page.
			for i := range n {
				var c [1]byte
				if a == 0 || !copyIn(a+uintptr(i), c[:]) {
					return "", unix.EFAULT
				}
				if c[0] == 0 {
					return string(buf), 0
				}
				buf = append(buf, c[0])
			}
			return "", unix.EFAULT
		}
		if i := bytes.IndexByte(chunk, 0); i >= 0 {
			return string(append(buf, chunk[:i]...)), 0
		}
		buf = append(buf, chunk...)
		a += uintptr(n)
	}
	return "", long
}

// readStrings reads the NULL-terminated array of strings at a (none for
// a null a), as execve copies argv and envp: EFAULT for memory it cannot
// read, E2BIG for a string past MAX_ARG_STRLEN.
func readStrings(a uintptr) ([]string, unix.Errno) {
	var out []string
	for ; a != 0; a += 8 {
		var w [8]byte
		if !copyIn(a, w[:]) {
			return nil, unix.EFAULT
		}
		sp := uintptr(*(*uint64)(unsafe.Pointer(&w)))
		if sp == 0 {
			break
		}
		s, e := readCString(sp, maxArgStrlen, unix.E2BIG)
		if e != 0 {
			return nil, e
		}
		out = append(out, s)
	}
	return out, 0
}

// readArgs reads execve's argv and envp and checks them against the
// kernel's room for them (bprm_stack_limits: a quarter of the stack
// limit, at least ARG_MAX, at most three quarters of _STK_LIM, for the
// strings, path included, and the pointers): E2BIG past it.
func readArgs(argvp, envpp uintptr, path string) (argv, envp []string, e unix.Errno) {
	if argv, e = readStrings(argvp); e != 0 {
		return nil, nil, e
	}
	if envp, e = readStrings(envpp); e != 0 {
		return nil, nil, e
	}
	limit := uint64(stkLim / 4 * 3)
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_STACK, &rl) == nil {
		limit = min(limit, rl.Cur/4)
	}
	limit = max(limit, argMax)
	need := uint64(max(len(argv), 1)+len(envp)) * 8
	need += uint64(len(path) + 1)
	for _, s := range argv {
		need += uint64(len(s) + 1)
	}
	for _, s := range envp {
		need += uint64(len(s) + 1)
	}
	if need > limit {
		return nil, nil, unix.E2BIG
	}
	return argv, envp, 0
}

// atPath turns execveat's dirfd, path and flags into a path execve
// takes: the path itself if absolute or relative to the working
// directory, else through /proc/self/fd (dirfd's directory, or with
// AT_EMPTY_PATH and an empty path the file dirfd is).
func atPath(dirfd int, path string, flags int) (string, unix.Errno) {
	if flags&^(unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW) != 0 {
		return "", unix.EINVAL
	}
	switch {
	case strings.HasPrefix(path, "/"):
		return path, 0
	case path == "" && flags&unix.AT_EMPTY_PATH == 0:
		return "", unix.ENOENT
	case dirfd == unix.AT_FDCWD:
		if path == "" {
			return ".", 0
		}
		return path, 0
	}
	if _, err := unix.FcntlInt(uintptr(dirfd), unix.F_GETFD, 0); err != nil {
		return "", unix.EBADF
	}
	fd := "/proc/self/fd/" + strconv.Itoa(dirfd)
	if path == "" {
		return fd, 0
	}
	return fd + "/" + path, 0
}

// checkExec checks the file at path as execve opens it
// (do_open_execat): the path resolves (ENOENT, ENOTDIR, ELOOP,
// ENAMETOOLONG, EACCES for a directory it cannot search), the file is
// executable for the effective ids and on a mount that allows it
// (EACCES), and it is a regular file (EACCES). nofollow refuses a
// symbolic link as the last component (ELOOP).
func checkExec(path string, nofollow bool) unix.Errno {
	var st unix.Stat_t
	if nofollow {
		if err := unix.Lstat(path, &st); err == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return unix.ELOOP
		}
	}
	if err := faccessX(path); err != 0 {
		return err
	}
	if err := unix.Stat(path, &st); err != nil {
		return errnoOf(err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return unix.EACCES
	}
	return 0
}

// faccessX is faccessat2(AT_FDCWD, path, X_OK, AT_EACCESS): execute
// permission for the effective ids, which also fails with EACCES on a
// noexec mount. Before Linux 5.8, faccessat checks the real ids.
func faccessX(path string) unix.Errno {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return unix.EINVAL
	}
	cwd := unix.AT_FDCWD
	_, _, e := unix.Syscall6(unix.SYS_FACCESSAT2, uintptr(cwd), uintptr(unsafe.Pointer(p)), unix.X_OK, unix.AT_EACCESS, 0, 0)
	if e == unix.ENOSYS {
		_, _, e = unix.Syscall(unix.SYS_FACCESSAT, uintptr(cwd), uintptr(unsafe.Pointer(p)), unix.X_OK)
	}
	return e
}

// errnoOf returns err's errno, EINVAL if it has none.
func errnoOf(err error) unix.Errno {
	var e unix.Errno
	if errors.As(err, &e) {
		return e
	}
	return unix.EINVAL
}

// resolveExec decides whether reachvm follows the execve of path with
// argv: an x86-64 ELF64 executable, or a script whose interpreter chain
// ends in one, is followed (the request, with the kernel's rewritten
// arguments for a script); anything else (another machine's executable,
// a file the kernel does not know, one reachvm cannot read) is left to
// the kernel, which runs it natively or fails as it does (nil, 0). An
// interpreter that is missing or not executable fails as the kernel
// fails it.
func resolveExec(path string, argv []string) (*ExecRequest, unix.Errno) {
	for depth := 0; ; depth++ {
		hdr, err := readHeader(path)
		if err != nil {
			return nil, 0
		}
		if bytes.HasPrefix(hdr, []byte("\x7fELF")) {
			const elfClass64, emX8664 = 2, 62
			if len(hdr) < 20 || hdr[4] != elfClass64 || hdr[18] != emX8664 || hdr[19] != 0 {
				return nil, 0
			}
			return &ExecRequest{Path: path, Argv: argv}, 0
		}
		if !bytes.HasPrefix(hdr, []byte("#!")) {
			return nil, 0
		}
		if depth == maxInterpDepth {
			return nil, unix.ELOOP
		}
		interp, arg, ok := parseShebang(hdr)
		if !ok {
			return nil, unix.ENOEXEC
		}
		// binfmt_script: argv[0] gives way to the interpreter, its
		// argument and the script's path.
		nargv := []string{interp}
		if arg != "" {
			nargv = append(nargv, arg)
		}
		nargv = append(nargv, path)
		if len(argv) > 1 {
			nargv = append(nargv, argv[1:]...)
		}
		if e := checkExec(interp, false); e != 0 {
			return nil, e
		}
		path, argv = interp, nargv
	}
}

// readHeader returns the first BINPRM_BUF_SIZE bytes of the file at path.
func readHeader(path string) ([]byte, error) {
	f, err := openFile(path, false)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, binprmBufSize)
	n, err := f.Read(buf)
	if n == 0 && err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// parseShebang reads a "#!" line as binfmt_script does: the interpreter
// up to the first blank, then the rest of the line, trimmed, as one
// argument. ok is false when there is no interpreter, or the line does
// not end within the buffer before the interpreter's name does.
func parseShebang(hdr []byte) (interp, arg string, ok bool) {
	line := hdr[2:]
	complete := false
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line, complete = line[:i], true
	}
	blank := func(c byte) bool { return c == ' ' || c == '\t' }
	line = bytes.TrimLeftFunc(line, func(r rune) bool { return blank(byte(r)) })
	end := bytes.IndexFunc(line, func(r rune) bool { return blank(byte(r)) || r == 0 })
	if end < 0 {
		if !complete {
			return "", "", false
		}
		end = len(line)
	}
	if end == 0 {
		return "", "", false
	}
	interp = string(line[:end])
	rest := line[end:]
	if i := bytes.IndexByte(rest, 0); i >= 0 {
		rest = rest[:i]
	}
	arg = strings.Trim(string(rest), " \t")
	return interp, arg, true
}

// ExecNative execs path with argv and envp through the kernel, the
// calling thread's mask and the process's dispositions first made in's
// (the mask blocked, the ignored signals SIG_IGN, the others SIG_DFL),
// as a program's execve leaves them. It returns only if the exec fails,
// with reachvm's own state put back. An embedder that follows a
// program's execve (Options.Exec) and then cannot load the new program
// runs it natively with it.
func ExecNative(path string, argv, envp []string, in Inherited) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if e := execNative(path, argv, envp, in.Mask&^unblockable, in.Ignored&^unblockable); e != 0 {
		return fmt.Errorf("jit: executing %s: %w", path, e)
	}
	return nil
}

// kernelSigaction is the kernel's struct sigaction.
type kernelSigaction struct {
	handler, flags, restorer, mask uint64
}

func rtSigaction(sig int, act, old *kernelSigaction) unix.Errno {
	_, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(act)), uintptr(unsafe.Pointer(old)), 8, 0, 0)
	return e
}

// execNative execs path with argv and envp through the kernel, the
// thread's mask and the process's dispositions first made the
// program's as execve keeps them (mask blocked, ignored SIG_IGN, every
// other signal SIG_DFL once the handlers go), and returns the error if
// it fails, with reachvm's own state put back.
//
// Preconditions: on the program's locked thread.
func execNative(path string, argv, envp []string, mask, ignored uint64) unix.Errno {
	type saved struct {
		sig int
		act kernelSigaction
	}
	var restore []saved
	for sig := 1; sig <= nsig; sig++ {
		if sig == int(unix.SIGKILL) || sig == int(unix.SIGSTOP) {
			continue
		}
		var cur kernelSigaction
		if rtSigaction(sig, nil, &cur) != 0 {
			continue
		}
		want := ignored&(1<<(sig-1)) != 0
		if want == (cur.handler == sigIGN) {
			continue
		}
		act := kernelSigaction{}
		if want {
			act.handler = sigIGN
		}
		if rtSigaction(sig, &act, nil) == 0 {
			restore = append(restore, saved{sig, cur})
		}
	}
	var old uint64
	_, _, e := unix.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&mask)), uintptr(unsafe.Pointer(&old)), 8, 0, 0)
	err := unix.Exec(path, argv, envp)
	if e == 0 {
		unix.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&old)), 0, 8, 0, 0)
	}
	for _, s := range restore {
		rtSigaction(s.sig, &s.act, nil)
	}
	return errnoOf(err)
}

package sim

import (
	"fmt"

	"github.com/reachvm/reachvm/internal/osmem"
)

// Fault injection.
//
// Every mutating call (Reserve, Commit, Decommit, Protect, Release,
// MapObject, Unmap, OpenFile, CreateShared) is numbered as it is made,
// whether it succeeds or not. A fault armed for a call number makes that
// call fail before it looks at its arguments, with no effect on the state:
// the same call, with the same arguments, on the same state, always fails
// the same way. That lets a test run a sequence of operations once per
// call, failing a different one each time, and check that every error path
// of the code under test leaves the address space as it found it.

// FailCall arms a fault: the nth mutating call from now (1 is the next
// one) fails with an *osmem.Error whose Class is class (osmem.ErrInjected
// if nil) and whose Code is the number the OS of the rules gives for that
// class (ENOMEM, ERROR_NOT_ENOUGH_MEMORY, ...). n below 1 counts as 1.
// Faults armed for different calls accumulate; arming the same call twice
// keeps the later class.
func (s *OS) FailCall(n int, class error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if class == nil {
		class = osmem.ErrInjected
	}
	s.faults[s.calls+max(n, 1)] = class
}

// FailFrom arms a fault for the nth mutating call from now and every one
// after it, until ClearFaults: a backend that has run out of memory for
// good. n below 1 counts as 1.
func (s *OS) FailFrom(n int, class error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if class == nil {
		class = osmem.ErrInjected
	}
	s.failFrom, s.failFromErr = s.calls+max(n, 1), class
}

// ClearFaults disarms every fault.
func (s *OS) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.faults)
	s.failFrom, s.failFromErr = 0, nil
}

// Calls returns how many mutating calls have been made.
func (s *OS) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// enterLocked counts a mutating call and returns the fault armed for it,
// if any.
//
// Preconditions: s.mu is held.
func (s *OS) enterLocked(op string, addr, size uintptr) error {
	s.calls++
	class, ok := s.faults[s.calls]
	if ok {
		delete(s.faults, s.calls)
	} else if s.failFrom != 0 && s.calls >= s.failFrom {
		class, ok = s.failFromErr, true
	}
	if !ok {
		return nil
	}
	return &osmem.Error{Op: op, Addr: addr, Size: size, Class: class, Code: s.code(class),
		Detail: fmt.Sprintf("injected fault at call %d", s.calls)}
}

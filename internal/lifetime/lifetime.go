// Package lifetime keeps the dependents of an object that closes them
// before it closes itself: the registry behind vmm.VMM.Track and
// vmcode.Code.Track.
//
// A dependent registers a closer when it is created and unregisters when
// it is closed. The owner's Close drains the registry, which refuses
// registrations from then on, and calls the closers it got back with no
// lock of the registry held, so that a closer may call back into the owner
// (a library's Close releases its slots) and unregister itself.
package lifetime

import (
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Dependent is one registered closer.
type Dependent struct {
	// Stage orders closing: lower stages close first.
	Stage int
	// Name says what the dependent is, for errors.
	Name string
	// Close closes it.
	Close func() error
	// seq is the registration's number: within a stage, later
	// registrations close first (reverse order of creation).
	seq uint64
}

// Registry is a set of dependents. The zero value is empty and open.
type Registry struct {
	// mu guards the fields below. It is a leaf lock: no closer runs
	// under it.
	mu sync.Mutex
	// closing is set by Drain; Add refuses from then on.
	closing bool
	// seq numbers registrations.
	seq uint64
	// deps holds the registered dependents by seq.
	deps map[uint64]Dependent
}

// Add registers close as a dependent of stage under name. It returns
// false, registering nothing, once Drain was called. untrack removes the
// registration; calling it again, or after Drain, is harmless.
func (r *Registry) Add(stage int, name string, close func() error) (untrack func(), ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		return nil, false
	}
	r.seq++
	id := r.seq
	if r.deps == nil {
		r.deps = make(map[uint64]Dependent)
	}
	r.deps[id] = Dependent{Stage: stage, Name: name, Close: close, seq: id}
	return func() {
		r.mu.Lock()
		delete(r.deps, id)
		r.mu.Unlock()
	}, true
}

// Drain refuses every later Add and returns the dependents registered now
// in the order to close them: by stage, lowest first, and within a stage
// in reverse order of registration. They stay registered until they
// untrack themselves.
func (r *Registry) Drain() []Dependent {
	r.mu.Lock()
	r.closing = true
	out := r.snapshotLocked()
	r.mu.Unlock()
	return out
}

// CloseAll drains r and closes each dependent in turn, with no lock of r
// held, and returns their failures, each as "owner: closing NAME: err". A
// failure that matches done (errors.Is) is not one: the dependent's user
// closed it meanwhile, and it is gone, which is what the owner wants.
func (r *Registry) CloseAll(owner string, done error) []error {
	var errs []error
	for _, d := range r.Drain() {
		if err := d.Close(); err != nil && !errors.Is(err, done) {
			errs = append(errs, fmt.Errorf("%s: closing %s: %w", owner, d.Name, err))
		}
	}
	return errs
}

// Names returns the names of the dependents registered now, in the order
// Drain would close them.
func (r *Registry) Names() []string {
	r.mu.Lock()
	deps := r.snapshotLocked()
	r.mu.Unlock()
	names := make([]string, len(deps))
	for i, d := range deps {
		names[i] = d.Name
	}
	return names
}

// Closing reports whether Drain was called.
func (r *Registry) Closing() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closing
}

// snapshotLocked returns the dependents in closing order.
//
// Preconditions: r.mu is held.
func (r *Registry) snapshotLocked() []Dependent {
	out := make([]Dependent, 0, len(r.deps))
	for _, d := range r.deps {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b Dependent) int {
		if a.Stage != b.Stage {
			return a.Stage - b.Stage
		}
		if a.seq > b.seq {
			return -1
		}
		return 1
	})
	return out
}

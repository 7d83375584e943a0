//go:build linux && amd64

package sigtramp

import (
	"os"
	"os/signal"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestGoFaultsStillGo checks that with reachvm's handlers in front, a
// fault in Go code is Go's as before: a nil dereference panics, and the
// panic is recovered.
func TestGoFaultsStillGo(t *testing.T) {
	if err := Install(); err != nil {
		t.Fatal(err)
	}
	var p *int
	recovered := func() (r any) {
		defer func() { r = recover() }()
		return *p
	}()
	if recovered == nil {
		t.Fatal("a nil dereference did not panic")
	}
}

// TestChainAsync checks that an asynchronous signal nobody listens for
// goes to Go's handler (here, to os/signal), and that Unlisten puts the
// previous action back.
func TestChainAsync(t *testing.T) {
	var before sigaction
	if err := rtSigaction(unix.SIGUSR2, nil, &before); err != nil {
		t.Fatal(err)
	}
	c := make(chan os.Signal, 1)
	signal.Notify(c, unix.SIGUSR2)
	defer signal.Stop(c)
	mask := uint64(1) << (unix.SIGUSR2 - 1)
	if err := Listen(mask); err != nil {
		t.Fatal(err)
	}
	var during sigaction
	if err := rtSigaction(unix.SIGUSR2, nil, &during); err != nil {
		t.Fatal(err)
	}
	if uintptr(during.handler) != handlerABI0 || during.flags&saRestart != 0 {
		t.Errorf("while listening: handler %#x flags %#x, want reachvm's %#x without SA_RESTART", during.handler, during.flags, handlerABI0)
	}
	// No context runs on any thread: the signal is Go's.
	if err := unix.Kill(os.Getpid(), unix.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c:
	case <-time.After(5 * time.Second):
		t.Fatal("SIGUSR2 never reached os/signal through the chain")
	}
	Unlisten(mask)
	var after sigaction
	if err := rtSigaction(unix.SIGUSR2, nil, &after); err != nil {
		t.Fatal(err)
	}
	if after.handler != before.handler || after.flags != before.flags {
		t.Errorf("after Unlisten: handler %#x flags %#x, want the previous %#x %#x", after.handler, after.flags, before.handler, before.flags)
	}
}

// TestRegions checks the table the handler reads: entries are reused
// and the high-water mark never shrinks below an entry in use.
func TestRegions(t *testing.T) {
	a, err := Register(0x1000, 0x2000, 0x9000, KindCode)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Register(0x3000, 0x4000, 0x9000, KindRoutines)
	if err != nil {
		t.Fatal(err)
	}
	if regions[a].lo != 0x1000 || regions[b].kind != KindRoutines || nregions <= uintptr(b) {
		t.Errorf("entries %d %d: %+v %+v, high-water %d", a, b, regions[a], regions[b], nregions)
	}
	Unregister(a)
	c, err := Register(0x5000, 0x6000, 0x9000, KindCode)
	if err != nil {
		t.Fatal(err)
	}
	if c != a {
		t.Errorf("a freed entry was not reused: got %d, want %d", c, a)
	}
	Unregister(b)
	Unregister(c)
}

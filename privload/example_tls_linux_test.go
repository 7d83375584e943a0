//go:build linux && amd64

package privload_test

import (
	"fmt"
	"log"
	"runtime"

	"github.com/reachvm/reachvm/privload"
	"github.com/reachvm/reachvm/vmm"
)

// Example_threadLocal loads the system's libstdc++ privately (with its
// private libgcc_s; libc and libm are the host's) and asks it for the
// calling thread's exception-handling globals (__cxa_get_globals), a
// thread-local variable of libstdc++'s reached through privload's own
// __tls_get_addr: it lies in the thread's block of libstdc++'s
// thread-local storage, which TLSBlock returns.
func Example_threadLocal() {
	v, err := vmm.New(vmm.Config{VMCodeSize: 64 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()
	lib, err := privload.Load(v, "libstdc++.so.6", privload.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer lib.Close()

	// A thread's blocks are that OS thread's.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	get, err := lib.Func("__cxa_get_globals")
	if err != nil {
		log.Fatal(err)
	}
	globals, err := get.Call0()
	if err != nil {
		log.Fatal(err)
	}
	block, err := lib.TLSBlock()
	if err != nil {
		log.Fatal(err)
	}
	tls := lib.File().TLS
	fmt.Println("in this thread's block:", globals >= block && globals < block+uintptr(tls.Memsz))
	for _, im := range lib.Imports() {
		if im.Name == "__tls_get_addr" {
			fmt.Println("__tls_get_addr bound by", im.How)
		}
	}
	// Output:
	// in this thread's block: true
	// __tls_get_addr bound by privload
}

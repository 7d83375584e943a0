//go:build linux && amd64

package clients_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/reachvm/reachvm/clients"
	"github.com/reachvm/reachvm/jit"
	"github.com/reachvm/reachvm/vmcode"
	"github.com/reachvm/reachvm/vmm"
)

// ExampleLoadNative builds the C inscount example with gcc, loads it
// into a VMM's vmcode as a native client, runs /bin/true under it and
// reads the report its exit event writes.
func ExampleLoadNative() {
	dir, err := os.MkdirTemp("", "reachvm-native-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	so := filepath.Join(dir, "inscount.so")
	gcc := exec.Command("gcc", "-O2", "-fPIC", "-shared", "-nostdlib", "-ffreestanding", "-fno-stack-protector",
		"-mgeneral-regs-only", "-I", "../include", "-o", so, "../examples/inscount.c")
	if out, err := gcc.CombinedOutput(); err != nil {
		log.Fatalf("%v: %s", err, out)
	}

	v, err := vmm.New(vmm.Config{VMCodeBase: jit.DefaultVMCodeBase, AllowElsewhere: true, VMCodeSize: 256 << 20, VMHeapSize: 256 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()
	// The client goes into the vmcode of the machine it instruments.
	tool, err := clients.LoadNative(v, so, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer tool.Close()
	m, err := jit.NewMachine(vmcode.New(v), &jit.Options{Client: tool.Client})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	p, err := m.LoadProgram("/bin/true")
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	status, err := p.Run([]string{"/bin/true"}, nil)
	if err != nil {
		log.Fatal(err)
	}

	// The exit event writes to the descriptor Report gives it: a pipe
	// to the buffer here.
	var buf bytes.Buffer
	if err := tool.Report(&buf); err != nil {
		log.Fatal(err)
	}
	var r struct {
		Client       string
		Instructions uint64
	}
	if err := json.Unmarshal(buf.Bytes(), &r); err != nil {
		log.Fatal(err)
	}
	fmt.Println("status", status, r.Client, "counted instructions:", r.Instructions > 1000)
	// Output: status 0 inscount counted instructions: true
}

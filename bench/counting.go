package bench

import (
	"sync/atomic"

	"github.com/reachvm/reachvm/mem"
)

// Counting wraps an mem.OS and counts the calls made through it, so that
// the cost of a strategy is measured at the OS boundary. Queries count
// too: VirtualQuery and reading /proc/self/maps are system calls, and a
// strategy that searches for holes pays for them.
type Counting struct {
	mem.OS
	n atomic.Int64
}

// NewCounting wraps o.
func NewCounting(o mem.OS) *Counting { return &Counting{OS: o} }

// Calls returns how many calls that reach the kernel have been made.
func (c *Counting) Calls() int { return int(c.n.Load()) }

func (c *Counting) Reserve(addr, size uintptr, mode mem.Mode) (uintptr, error) {
	c.n.Add(1)
	return c.OS.Reserve(addr, size, mode)
}
func (c *Counting) Commit(addr, size uintptr, prot mem.Prot) error {
	c.n.Add(1)
	return c.OS.Commit(addr, size, prot)
}
func (c *Counting) Decommit(addr, size uintptr) error {
	c.n.Add(1)
	return c.OS.Decommit(addr, size)
}
func (c *Counting) Protect(addr, size uintptr, prot mem.Prot) error {
	c.n.Add(1)
	return c.OS.Protect(addr, size, prot)
}
func (c *Counting) Release(addr, size uintptr) error {
	c.n.Add(1)
	return c.OS.Release(addr, size)
}
func (c *Counting) OpenFile(path string) (mem.Object, error) {
	c.n.Add(1)
	return c.OS.OpenFile(path)
}
func (c *Counting) CreateShared(name string, size uint64) (mem.Object, error) {
	c.n.Add(1)
	return c.OS.CreateShared(name, size)
}
func (c *Counting) CloseObject(obj mem.Object) error {
	c.n.Add(1)
	return c.OS.CloseObject(obj)
}
func (c *Counting) MapObject(obj mem.Object, off uint64, addr, size uintptr, prot mem.Prot, mode mem.Mode) (uintptr, error) {
	c.n.Add(1)
	return c.OS.MapObject(obj, off, addr, size, prot, mode)
}
func (c *Counting) Unmap(addr, size uintptr) error {
	c.n.Add(1)
	return c.OS.Unmap(addr, size)
}
func (c *Counting) Query(addr uintptr) (mem.Region, error) {
	c.n.Add(1)
	return c.OS.Query(addr)
}
func (c *Counting) Regions(lo, hi uintptr) ([]mem.Region, error) {
	c.n.Add(1)
	return c.OS.Regions(lo, hi)
}

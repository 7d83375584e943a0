// Package osmem holds the backends of the OS memory interface mem.OS, the
// one way reachvm changes the process's address space: reserve, commit,
// protect, release, map an object at an address, unmap, dual-map (through
// shared objects) and query.
//
// Three backends implement it: the native one returned by Native (Linux via
// golang.org/x/sys/unix, Windows via golang.org/x/sys/windows), and the
// in-memory simulator of package internal/osmem/sim, which enforces either
// OS's rules and injects faults. Every rule the simulator enforces is also
// exercised against the real backend by the conformance suite in
// internal/osmem/osmemtest. Only package vmm (and the reachability
// strategies bench measures) call them.
//
// Addresses are uintptr throughout: memory handed out here is not Go memory
// and must never be converted to a Go pointer except through package
// internal/rawmem, which holds the audited conversions.
package osmem

import "github.com/reachvm/reachvm/mem"

// The interface's vocabulary is public, in package mem; these aliases keep
// the backends' and their tests' spelling short.
type (
	Prot           = mem.Prot
	State          = mem.State
	Type           = mem.Type
	Region         = mem.Region
	Rules          = mem.Rules
	Mode           = mem.Mode
	Object         = mem.Object
	FileIdentity   = mem.FileIdentity
	OS             = mem.OS
	Error          = mem.Error
	SharedReserver = mem.SharedReserver
	Discarder      = mem.Discarder
	Remapper       = mem.Remapper
	Populator      = mem.Populator
	// SharedFileOpener is mem.SharedFileOpener.
	SharedFileOpener = mem.SharedFileOpener
)

const (
	ProtNone  = mem.ProtNone
	ProtRead  = mem.ProtRead
	ProtWrite = mem.ProtWrite
	ProtExec  = mem.ProtExec
	ProtRW    = mem.ProtRW
	ProtRX    = mem.ProtRX
	ProtRWX   = mem.ProtRWX

	StateFree      = mem.StateFree
	StateReserved  = mem.StateReserved
	StateCommitted = mem.StateCommitted

	TypeNone    = mem.TypeNone
	TypePrivate = mem.TypePrivate
	TypeMapped  = mem.TypeMapped
	TypeImage   = mem.TypeImage

	RulesLinux   = mem.RulesLinux
	RulesWindows = mem.RulesWindows

	Hint  = mem.Hint
	Exact = mem.Exact
	Fixed = mem.Fixed

	WinErrorNotEnoughMemory  = mem.WinErrorNotEnoughMemory
	WinErrorInvalidParameter = mem.WinErrorInvalidParameter
	WinErrorInvalidAddress   = mem.WinErrorInvalidAddress
	WinErrorCommitmentLimit  = mem.WinErrorCommitmentLimit
)

// Error classes, the same values as package mem's.
var (
	ErrExists       = mem.ErrExists
	ErrNoMemory     = mem.ErrNoMemory
	ErrInvalid      = mem.ErrInvalid
	ErrNotMapped    = mem.ErrNotMapped
	ErrNotSupported = mem.ErrNotSupported
	ErrInjected     = mem.ErrInjected
)

// Functions of the interface's vocabulary.
var (
	Code                = mem.Code
	CheckRange          = mem.CheckRange
	CreateSharedReserve = mem.CreateSharedReserve
	Discard             = mem.Discard
	Remap               = mem.Remap
	OpenSharedFile      = mem.OpenSharedFile
)

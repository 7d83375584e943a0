//go:build linux && amd64

package main

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// The suite's programs are ordinary C and C++ programs (testdata/progs),
// built with glibc by gcc and g++ three ways, as distributions build
// programs: static (linked at 0x400000), static PIE, and dynamic (a PIE
// that ld.so loads). Builds are cached by content in the user's cache
// directory, so that a test run compiles only what changed.

// progKind is one way of building a program.
type progKind struct {
	// name names the kind in the suite's rows.
	name string
	// flags are the compiler's flags for the kind.
	flags []string
}

// progKinds are the kinds, in report order.
var progKinds = []progKind{
	{name: "static", flags: []string{"-static"}},
	{name: "static-pie", flags: []string{"-static-pie"}},
	{name: "dynamic"},
}

// errNoCompiler is returned when a program's compiler is not installed.
var errNoCompiler = errors.New("compiler not found")

// compilerVersions memoizes `CC --version`, part of every cache key: a new
// compiler builds anew.
var compilerVersions sync.Map // compiler name -> string

// compilerFor returns the compiler of a source file and its flags (before
// the kind's): C or C++, optimised, with threads, C's with libm.
func compilerFor(src string) (cc string, flags, libs []string) {
	if strings.HasSuffix(src, ".cc") {
		return "g++", []string{"-O2", "-std=c++17", "-pthread"}, nil
	}
	return "gcc", []string{"-O2", "-pthread"}, []string{"-lm"}
}

// buildProg builds testdata/progs/SRC as kind and returns the
// executable's path, from the cache when it was built before.
func buildProg(src string, kind progKind) (string, error) {
	cc, flags, libs := compilerFor(src)
	if _, err := exec.LookPath(cc); err != nil {
		return "", fmt.Errorf("%s: %w", cc, errNoCompiler)
	}
	text, err := os.ReadFile(filepath.Join("testdata", "progs", src))
	if err != nil {
		return "", err
	}
	ver, ok := compilerVersions.Load(cc)
	if !ok {
		out, err := exec.Command(cc, "--version").Output()
		if err != nil {
			return "", fmt.Errorf("%s --version: %v", cc, err)
		}
		ver, _ = compilerVersions.LoadOrStore(cc, string(out))
	}
	args := append(append(append([]string{}, flags...), kind.flags...), "-o")
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%q\n%q\n%s\n", cc, args, libs, ver)
	h.Write(text)
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "reachvm", fmt.Sprintf("progs-%x", h.Sum(nil)[:8]))
	out := filepath.Join(dir, strings.TrimSuffix(strings.TrimSuffix(src, ".c"), ".cc")+"-"+kind.name)
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// Written under a name of its own and renamed: test binaries that
	// build at once never see half a file.
	tmp := fmt.Sprintf("%s.tmp%d", out, os.Getpid())
	srcPath, err := filepath.Abs(filepath.Join("testdata", "progs", src))
	if err != nil {
		return "", err
	}
	cmd := exec.Command(cc, append(append(append([]string{}, args...), tmp, srcPath), libs...)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, b)
	}
	return out, os.Rename(tmp, out)
}

//go:build linux

package privload

import (
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/reachvm/reachvm/vmm"
)

// TestSweepSystemLibraries loads every ELF shared object under
// /usr/lib/x86_64-linux-gnu (recursively; symlinks are followed only as
// DT_NEEDED names) privately, with its private dependencies: each either
// loads, or is refused with an error that names it and says why. After
// each, aspacem must match the kernel, all of vmcode must be free again
// and no file descriptor may have leaked. A panic fails the test.
//
// Libraries are loaded with SkipInit: the sweep maps, relocates and binds
// (and runs ifunc resolvers, which relocation needs), but does not run
// initialisers, because arbitrary libraries' initialisers may start
// threads, install signal handlers, register exit handlers or thread-key
// destructors with the host's libc that point into an image about to be
// unloaded, or expect the program they plug into (perl, python, a GUI
// toolkit). The fixtures and the real-library tests run initialisers.
// Dependencies are searched as ld.so searches them (DT_RPATH,
// LD_LIBRARY_PATH, DT_RUNPATH, ld.so.cache, the system directories), so
// that plugins in subdirectories find the libraries they need.
//
// The whole sweep takes about 15 seconds (981 files, 802 loaded with 3691
// private dependencies, on a desktop-sized Debian 12: each library that
// needs libstdc++, libLLVM among them, loads it privately; before
// privload had thread-local storage, 531 loaded, with 507, in a second);
// REACHVM_SWEEP=short sweeps every 16th file only.
func TestSweepSystemLibraries(t *testing.T) {
	const root = "/usr/lib/x86_64-linux-gnu"
	files := sweepFiles(t, root)
	if len(files) == 0 {
		t.Skipf("no shared objects under %s", root)
	}
	if os.Getenv("REACHVM_SWEEP") == "short" || testing.Short() {
		var sample []string
		for i := 0; i < len(files); i += 16 {
			sample = append(sample, files[i])
		}
		t.Logf("sweeping %d of %d shared objects (short)", len(sample), len(files))
		files = sample
	}
	v, err := vmm.New(vmm.Config{VMCodeSize: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	free := v.FreeVMCode()
	fds := countFDs(t)
	start := time.Now()
	loaded, privateDeps := 0, 0
	reasons := map[string][]string{}
	for _, path := range files {
		lib, err := sweepLoad(v, path)
		if err == nil {
			loaded++
			privateDeps += len(lib.Libraries()) - 1
			for _, l := range lib.Libraries() {
				if !v.InVMCode(l.Base(), l.Size()) {
					t.Errorf("%s: %s lies outside vmcode", path, l.Name())
				}
			}
			if err := lib.Close(); err != nil {
				t.Errorf("%s: Close: %v", path, err)
			}
		} else {
			if !strings.Contains(err.Error(), path) {
				t.Errorf("%s: error does not name the file: %v", path, err)
			}
			r := reasonClass(err)
			reasons[r] = append(reasons[r], filepath.Base(path))
		}
		mism, serr := v.Space().SyncCheck(v.OS())
		if serr != nil || len(mism) > 0 {
			t.Fatalf("after %s: sync check: %v %v", path, serr, mism)
		}
		if got := v.FreeVMCode(); got != free {
			t.Fatalf("after %s: vmcode free bytes %#x, want %#x: a slot leaked", path, got, free)
		}
	}
	if got := countFDs(t); got != fds {
		t.Errorf("%d file descriptors open after the sweep, %d before", got, fds)
	}
	t.Logf("%d shared objects in %v: %d loaded (with %d private dependencies in all), %d refused",
		len(files), time.Since(start).Round(time.Millisecond), loaded, privateDeps, len(files)-loaded)
	var keys []string
	for k := range reasons {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return len(reasons[keys[i]]) > len(reasons[keys[j]]) })
	for _, k := range keys {
		ex := reasons[k]
		t.Logf("  %4d refused: %s (e.g. %s)", len(ex), k, strings.Join(ex[:min(3, len(ex))], ", "))
	}
	if loaded == 0 {
		t.Error("nothing loaded")
	}
}

// sweepLoad loads one library, turning a panic into a test failure
// report rather than a crash of the sweep.
func sweepLoad(v *vmm.VMM, path string) (lib *Library, err error) {
	defer func() {
		if r := recover(); r != nil {
			lib, err = nil, fmt.Errorf("PANIC loading %s: %v", path, r)
		}
	}()
	return Load(v, path, Options{SkipInit: true})
}

// sweepFiles lists the regular files under root that are ELF shared
// objects (ET_DYN), in name order.
func sweepFiles(t *testing.T, root string) []string {
	var out []string
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return nil
		}
		defer f.Close()
		var hdr [20]byte
		if n, _ := f.Read(hdr[:]); n < 20 || string(hdr[:4]) != elf.ELFMAG {
			return nil
		}
		if elf.Class(hdr[elf.EI_CLASS]) == elf.ELFCLASS64 && elf.Type(uint16(hdr[16])|uint16(hdr[17])<<8) != elf.ET_DYN {
			return nil
		}
		out = append(out, path)
		return nil
	})
	sort.Strings(out)
	return out
}

func countFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

var (
	reHex    = regexp.MustCompile(`0x[0-9a-f]+`)
	reQuoted = regexp.MustCompile(`"[^"]*"`)
	reAt     = regexp.MustCompile(` at ADDR`)
	reParen  = regexp.MustCompile(` \([^)]*\)$`)
)

// reasonClass reduces a refusal to its kind: the reason without file
// names, addresses or symbol names, and whether it was a dependency's.
func reasonClass(err error) string {
	msg := err.Error()
	var fe *FormatError
	if !errors.As(err, &fe) {
		return "other: " + msg
	}
	r := reHex.ReplaceAllString(fe.Reason, "ADDR")
	r = reAt.ReplaceAllString(r, "")
	r = reQuoted.ReplaceAllString(r, "NAME")
	switch {
	case strings.HasPrefix(r, "dependency "):
		r = "dependency not found (on DT_RPATH, LD_LIBRARY_PATH, DT_RUNPATH, in ld.so.cache or the system directories)"
	case strings.HasPrefix(r, "undefined symbol"):
		r = "undefined symbol (its definition is expected from the program it plugs into)"
	case strings.Contains(r, "thread-local storage"):
		r = reParen.ReplaceAllString(strings.TrimPrefix(strings.TrimPrefix(r, "DT_RELA "), "DT_JMPREL "), "")
	}
	r = fmt.Sprintf("[%v] %s", fe.Class, r)
	if strings.Contains(fe.File, "(needed by") {
		r = "dependency: " + r
	}
	return r
}

//go:build linux

package privload

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/internal/demolib"
	"github.com/reachvm/reachvm/vmm"
)

func init() {
	// FuzzParse (portable) takes the fixtures as seeds too.
	parseSeeds = fixtureSeeds
}

// fixtureSeeds returns the bytes of every fixture library, if gcc can
// build them.
func fixtureSeeds(t testing.TB) [][]byte {
	var out [][]byte
	if _, err := os.Stat("/usr/bin/gcc"); err != nil {
		return nil
	}
	dir := fixtures(t)
	for _, b := range fxBuilds {
		if data, err := os.ReadFile(filepath.Join(dir, b.out)); err == nil {
			out = append(out, data)
		}
	}
	return out
}

var (
	fuzzOnce sync.Once
	fuzzV    *vmm.VMM
	fuzzDir  string
	fuzzErr  error
)

// fuzzEnv returns the VMM and the directory one fuzzing process uses for
// all its inputs: a VMM per input would make each one cost a 256 MiB
// reservation, and reusing one also checks that nothing accumulates.
func fuzzEnv(t *testing.T) (*vmm.VMM, string) {
	fuzzOnce.Do(func() {
		// Small inputs too take the sparse read path, which is the
		// one big libraries take.
		sparseMin = 0
		fuzzV, fuzzErr = vmm.New(vmm.Config{VMCodeSize: 256 << 20})
		if fuzzErr != nil {
			return
		}
		fuzzDir, fuzzErr = os.MkdirTemp("", "privload-fuzz-")
		if fuzzErr == nil {
			fuzzDir, fuzzErr = filepath.EvalSymlinks(fuzzDir)
		}
		testCleanups = append(testCleanups, func() {
			fuzzV.Close()
			os.RemoveAll(fuzzDir)
		})
	})
	if fuzzErr != nil {
		t.Fatal(fuzzErr)
	}
	return fuzzV, fuzzDir
}

// FuzzLoad feeds arbitrary bytes to Load, as a file: whatever it is, Load
// must not panic; a failure must be an error naming the file; a success
// must have mapped the file only inside the slots of the libraries it
// loaded, all inside vmcode; and after the failure or the Close, aspacem
// must match the kernel, vmcode must be wholly free again, no mapping of
// the file may remain and no descriptor may have leaked.
//
// No code of the input runs: SkipInit and SkipIFunc. Only libc is bound
// to the host (a mutated DT_NEEDED naming another system library is then
// searched privately and not found), so that fuzzing cannot make the host
// load libraries that change it (a malloc debugger).
func FuzzLoad(f *testing.F) {
	f.Add(demolib.SO)
	for _, s := range fixtureSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, dir := fuzzEnv(t)
		path := filepath.Join(dir, "fuzz.so")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		free, fds := v.FreeVMCode(), countFDs(t)
		lib, err := Load(v, path, Options{SkipInit: true, SkipIFunc: true, System: []string{"libc.so.6"}})
		if err != nil {
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error does not name the file: %v", err)
			}
			if err := noMappingOf(path, nil); err != nil {
				t.Fatal(err)
			}
		} else {
			// A failed check must not leave the image mapped: the
			// fuzzer's minimisation would blame every later input.
			defer lib.Close()
			libs := lib.Libraries()
			for _, l := range libs {
				if !v.InVMCode(l.Start(), l.Size()) {
					t.Fatalf("%s [%#x, +%#x) is outside vmcode", l.Name(), l.Start(), l.Size())
				}
				for _, s := range l.Segments() {
					if s.Start < l.Start() || s.End > l.Start()+l.Size() {
						t.Fatalf("%s: segment %+v outside its slot [%#x, +%#x)", l.Name(), s, l.Start(), l.Size())
					}
				}
			}
			if err := noMappingOf(path, libs); err != nil {
				t.Fatal(err)
			}
			if err := lib.Close(); err != nil {
				t.Fatal(err)
			}
			if err := noMappingOf(path, nil); err != nil {
				t.Fatal(err)
			}
		}
		mism, err := v.Space().SyncCheck(v.OS())
		if err != nil || len(mism) > 0 {
			t.Fatalf("sync check: %v %v", err, mism)
		}
		if got := v.FreeVMCode(); got != free {
			t.Fatalf("vmcode free bytes %#x, %#x before: a slot leaked", got, free)
		}
		if got := countFDs(t); got != fds {
			t.Fatalf("%d descriptors open, %d before", got, fds)
		}
	})
}

// noMappingOf reports a mapping of path that lies outside the slots of
// libs (with libs nil: any mapping of path).
func noMappingOf(path string, libs []*Library) error {
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(maps), "\n") {
		if !strings.HasSuffix(line, " "+path) {
			continue
		}
		var lo, hi uintptr
		if _, err := fmt.Sscanf(line, "%x-%x", &lo, &hi); err != nil {
			return fmt.Errorf("bad maps line %q", line)
		}
		inside := false
		for _, l := range libs {
			inside = inside || (lo >= l.Start() && hi <= l.Start()+l.Size())
		}
		if !inside {
			return fmt.Errorf("a mapping of %s lies outside the loaded slots: %s", path, line)
		}
	}
	return nil
}

// TestSparseParse reads system libraries and the fixtures as the loader
// does, only the parts parsing needs, and checks that the result is the
// full parse's and that it read much less than the files.
func TestSparseParse(t *testing.T) {
	paths := systemLibs(t, 60, 64<<20)
	if _, err := os.Stat("/usr/bin/gcc"); err == nil {
		dir := fixtures(t)
		for _, b := range fxBuilds {
			paths = append(paths, filepath.Join(dir, b.out))
		}
	}
	saved := sparseMin
	sparseMin = 0
	defer func() { sparseMin = saved }()
	var total, read int64
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		full, ferr := Parse(p, data)
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		sparse, serr := readParse(fd, uint64(len(data)), p)
		unix.Close(fd)
		if (ferr == nil) != (serr == nil) || (ferr != nil && ferr.Error() != serr.Error()) {
			t.Errorf("%s: full parse: %v; sparse: %v", p, ferr, serr)
			continue
		}
		if ferr != nil {
			continue
		}
		if got, want := fileSummary(sparse), fileSummary(full); got != want {
			t.Errorf("%s: sparse parse differs:\n%s\nfull:\n%s", p, got, want)
		}
		total += int64(len(data))
		if sparse.chunks != nil {
			for _, c := range sparse.chunks {
				read += int64(len(c.b))
			}
		} else {
			read += int64(len(data))
		}
	}
	t.Logf("%d files, %d bytes; the sparse parses read %d bytes (%.1f%%)", len(paths), total, read, 100*float64(read)/float64(max(total, 1)))
	if read*2 > total {
		t.Errorf("sparse parses read %d of %d bytes", read, total)
	}
}

// fileSummary prints what a loader uses of a parsed file.
func fileSummary(f *File) string {
	var b strings.Builder
	fmt.Fprintf(&b, "loads %v dyn %v relro %v soname %q needed %q runpath %q rpath %q init %#x fini %#x arrays %v %v\n",
		f.Loads, f.Dynamic, f.Relro, f.Soname, f.Needed, f.Runpath, f.Rpath, f.Init, f.Fini, f.InitArray, f.FiniArray)
	fmt.Fprintf(&b, "rela %v\nplt %v\nrelr %v\nflags %#x %#x symbolic %v nsyms %d\n", f.Rela, f.PLTRela, f.Relr, f.Flags, f.Flags1, f.Symbolic, f.NumSymbols)
	for _, v := range f.Versions {
		fmt.Fprintf(&b, "version %q %q %v %v\n", v.Name, v.File, v.Defined, v.Weak)
	}
	for _, s := range f.Symbols() {
		fmt.Fprintf(&b, "%+v\n", s)
	}
	return b.String()
}

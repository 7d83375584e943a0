package privload

import (
	"os"
	"testing"

	"github.com/reachvm/reachvm/internal/demolib"
)

// benchFile parses a system library (libz if present), else the demo
// library.
func benchFile(b *testing.B) *File {
	name, data := demolib.Name, demolib.SO
	if libs := systemLibs(b, 1, 4<<20); len(libs) > 0 {
		if d, err := os.ReadFile(libs[0]); err == nil {
			name, data = libs[0], d
		}
	}
	f, err := Parse(name, data)
	if err != nil {
		b.Fatal(err)
	}
	return f
}

func BenchmarkParse(b *testing.B) {
	b.SetBytes(int64(len(demolib.SO)))
	for b.Loop() {
		if _, err := Parse(demolib.Name, demolib.SO); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLookup compares the GNU and SysV lookups, hits and misses.
func BenchmarkLookup(b *testing.B) {
	f := benchFile(b)
	var names []string
	for _, s := range f.Symbols() {
		if exported(s) {
			names = append(names, s.Name)
		}
	}
	if len(names) == 0 {
		b.Skip("no exported symbols")
	}
	for _, lk := range []struct {
		name string
		fn   func(string) (int, Symbol, bool)
		have bool
	}{{"gnu", f.lookupGNU, f.gnu != nil}, {"sysv", f.lookupSysV, f.sysv != nil}} {
		if !lk.have {
			continue
		}
		b.Run(lk.name+"/hit", func(b *testing.B) {
			i := 0
			for b.Loop() {
				if _, _, ok := lk.fn(names[i%len(names)]); !ok {
					b.Fatal("miss")
				}
				i++
			}
		})
		b.Run(lk.name+"/miss", func(b *testing.B) {
			for b.Loop() {
				lk.fn("reachvm_no_such_symbol")
			}
		})
	}
}

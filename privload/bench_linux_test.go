//go:build linux

package privload

import (
	"testing"

	"github.com/ebitengine/purego"

	"github.com/reachvm/reachvm/internal/demolib"
)

// BenchmarkLoad loads and closes the demo library: privload into vmcode,
// and the system's dlopen/dlclose as the baseline (DESIGN section 6).
func BenchmarkLoad(b *testing.B) {
	path := writeTemp(b, demolib.Name, demolib.SO)
	b.Run("privload", func(b *testing.B) {
		v := newVMM(b)
		for b.Loop() {
			lib, err := Load(v, path, Options{})
			if err != nil {
				b.Fatal(err)
			}
			if err := lib.Close(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("dlopen", func(b *testing.B) {
		for b.Loop() {
			h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_LOCAL)
			if err != nil {
				b.Fatal(err)
			}
			if err := purego.Dlclose(h); err != nil {
				b.Fatal(err)
			}
		}
	})
}

//go:build linux

package privload

import (
	"runtime"
	"testing"

	"github.com/ebitengine/purego"

	"github.com/reachvm/reachvm/internal/native"
)

// BenchmarkTLS measures thread-local storage in privately loaded code
// against the same gcc-built library opened by the host's dlopen in the
// same process (glibc's __tls_get_addr):
//
//   - call-plain: a call from Go of a function without TLS, the baseline;
//   - call-tls: a call of one that reads a global-dynamic variable (one
//     __tls_get_addr);
//   - loop: fx_tls_loop(1000), a thousand out-of-line reads, each through
//     __tls_get_addr: the per-access cost once the thread has its blocks;
//   - desc: a call of a function that reads two variables through TLS
//     descriptors (-mtls-dialect=gnu2).
func BenchmarkTLS(b *testing.B) {
	benchTLS(b, "libfx_tlsmodels.so", []benchTLSCall{{"fx_plain", 1}, {"fx_tls_get", 0}, {"fx_tls_loop", 1000}})
	benchTLS(b, "libfx_tlsdesc.so", []benchTLSCall{{"fx_desc_get", 0}})
}

// benchTLSCall is one function BenchmarkTLS calls, with its argument.
type benchTLSCall struct {
	name string
	arg  uintptr
}

func benchTLS(b *testing.B, lib string, calls []benchTLSCall) {
	path := fxPath(b, lib)
	v := newVMM(b)
	l, err := Load(v, path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		b.Fatal(err)
	}
	defer purego.Dlclose(h)
	host := func(name string) uintptr {
		a, err := purego.Dlsym(h, name)
		if err != nil {
			b.Fatal(err)
		}
		return a
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, c := range calls {
		priv := tlsFunc(b, l, c.name).Addr()
		hostFn := host(c.name)
		b.Run(c.name+"/privload", func(b *testing.B) {
			for b.Loop() {
				native.Call1(priv, c.arg)
			}
		})
		b.Run(c.name+"/host", func(b *testing.B) {
			for b.Loop() {
				native.Call1(hostFn, c.arg)
			}
		})
	}
}

package bench

import (
	"encoding/json"
	"fmt"
	"os"
)

// SizesEnv names a file holding the size distributions (JSON, as
// WriteSizes writes them) that Distributions should return instead of
// reading this machine's directories. reachvm strategies --backend wine
// sets it: under Wine, symbolic links in /usr/lib read as regular files
// (libfoo.so.1 -> libfoo.so.1.2 counts twice), so the Windows build would
// draw from another distribution than the Linux run it is compared with.
const SizesEnv = "REACHVM_BENCH_SIZES"

type sizesFile struct {
	SO, PE Sizes
}

// WriteSizes writes this machine's distributions to path, for SizesEnv.
func WriteSizes(path string) error {
	so, pe := Distributions()
	b, err := json.Marshal(sizesFile{so, pe})
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// UseSizesEnv makes Distributions return the distributions of the file
// named by $REACHVM_BENCH_SIZES, if set. It must run before anything
// calls Distributions.
func UseSizesEnv() error {
	path := os.Getenv(SizesEnv)
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var f sizesFile
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if len(f.SO.Sizes) == 0 || len(f.PE.Sizes) == 0 {
		return fmt.Errorf("%s: empty distribution", path)
	}
	sizesOnce.Do(func() { soSizes, peSizes = f.SO, f.PE })
	return nil
}

// Command merge joins the output directories of several `reachvm
// strategies --out` runs into one, as if a single run had made them:
// strategies.json, strategies.csv, sizes.csv, regions.csv, tables.md and
// the plots. scripts/wine/figures.sh runs each strategy in a Windows
// process of its own under Wine (a strategy's run changes where Wine
// places later allocations, which would decide the next strategy's
// figures) and merges the runs with it.
//
// Usage: go run ./scripts/wine/merge [-seed S] [-note TEXT] OUTDIR DIR...
//
// The first line of the first DIR's tables.md (the run's parameters)
// heads the merged tables.md, followed by TEXT if given.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/reachvm/reachvm/bench"
)

func main() {
	seed := flag.Uint64("seed", 1, "the runs' seed (plot titles)")
	note := flag.String("note", "", "a line added under the runs' parameters in tables.md")
	flag.Parse()
	if flag.NArg() < 2 {
		fmt.Fprintln(os.Stderr, "usage: merge [-seed S] [-note TEXT] OUTDIR DIR...")
		os.Exit(2)
	}
	if err := merge(flag.Arg(0), flag.Args()[1:], *seed, *note); err != nil {
		fmt.Fprintln(os.Stderr, "merge:", err)
		os.Exit(1)
	}
}

func merge(out string, dirs []string, seed uint64, note string) error {
	var (
		rows    []bench.Row
		sizes   []bench.SizePoint
		regions []bench.RegionPoint
		header  string
	)
	for i, d := range dirs {
		r, err := read(filepath.Join(d, "strategies.csv"), bench.ReadCSV)
		if err != nil {
			return err
		}
		rows = append(rows, r...)
		// A run without sweeps has no sweep files.
		if s, err := read(filepath.Join(d, "sizes.csv"), bench.ReadSizeCSV); err == nil {
			sizes = append(sizes, s...)
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if p, err := read(filepath.Join(d, "regions.csv"), bench.ReadRegionCSV); err == nil {
			regions = append(regions, p...)
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if i == 0 {
			f, err := os.Open(filepath.Join(d, "tables.md"))
			if err != nil {
				return err
			}
			sc := bufio.NewScanner(f)
			sc.Scan()
			header = sc.Text()
			f.Close()
		}
	}
	if note != "" {
		header += "\n\n" + note
	}
	files := map[string]func(io.Writer) error{
		"strategies.json": func(w io.Writer) error {
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			return enc.Encode(bench.ByStrategy(rows))
		},
		"strategies.csv": func(w io.Writer) error { return bench.WriteCSV(w, rows) },
		"tables.md": func(w io.Writer) error {
			if _, err := fmt.Fprintf(w, "%s\n\n", header); err != nil {
				return err
			}
			return bench.WriteMarkdown(w, rows, sizes, regions)
		},
	}
	if sizes != nil {
		files["sizes.csv"] = func(w io.Writer) error { return bench.WriteSizeCSV(w, sizes) }
	}
	if regions != nil {
		files["regions.csv"] = func(w io.Writer) error { return bench.WriteRegionCSV(w, regions) }
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	for name, fn := range files {
		var b bytes.Buffer
		if err := fn(&b); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(out, name), b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	for _, f := range append(bench.SizePlots(sizes, seed), bench.RegionPlots(regions, seed)...) {
		if err := os.WriteFile(filepath.Join(out, f.Name), f.Data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func read[T any](path string, parse func(io.Reader) ([]T, error)) ([]T, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	v, err := parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

#!/usr/bin/env bash
# Builds the PE test DLLs with mingw-w64 into build/ (committed: the tests
# that load them run under Wine, where gcc cannot run).
#
# Usage: build.sh [OUTDIR]      (default: build/ next to this script)
#        CC=x86_64-w64-mingw32-gcc by default.
#
# Run by `go generate ./privload`. The build is reproducible (no timestamp,
# fixed image bases, stripped), so TestPEFixturesUpToDate can rebuild into a
# temporary directory and compare: byte for byte with the same toolchain,
# and by what the tests depend on (exports, imports, relocations) with
# another one.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-$here/build}
cc=${CC:-x86_64-w64-mingw32-gcc}
dlltool=${DLLTOOL:-${cc%gcc}dlltool}
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# -nostdlib and our own DllMain as the entry point: mingw's CRT start-up
# would add a TLS directory (tlssup.o), which privload refuses, and
# runtime pseudo-relocations, which only that start-up code applies.
# -mno-stack-arg-probe and -fno-tree-loop-distribute-patterns keep gcc from
# emitting calls to ___chkstk_ms, memset or memcpy, which nothing provides.
cflags=(-O2 -Wall -Werror -shared -s -nostdlib -fno-stack-protector -mno-stack-arg-probe
	-fno-tree-loop-distribute-patterns -fno-ident
	-Wl,-e,DllMain -Wl,--no-insert-timestamp -Wl,--disable-auto-image-base
	-Wl,--disable-auto-import -Wl,--dynamicbase)

"$cc" "${cflags[@]}" -Wl,--image-base,0x6b5400000 -o "$out/noimports.dll" "$here/noimports.c"

"$dlltool" -d "$here/ws2_ord.def" -l "$tmp/libws2_ord.a"
"$cc" "${cflags[@]}" -Wl,--image-base,0x7ff512340000 -o "$out/crt.dll" "$here/crt.c" \
	-L"$tmp" -lws2_ord -lmsvcrt -lkernel32

"$cc" "${cflags[@]}" -Wl,--image-base,0x6b5800000 -o "$out/fwd.dll" "$here/fwd.c" "$here/fwd.def"

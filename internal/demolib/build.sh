#!/bin/sh
# Rebuilds the demo library: libdemo.so from c/libdemo.c, and demo.dll from
# c/demo.c (kept in a directory of their own: a .c file beside Go files
# would make the package a cgo package).
# Usage: build.sh [OUT [DLLOUT]] (default: libdemo.so and demo.dll beside
# this script). CC overrides the compiler (default gcc), MINGW the
# mingw-w64 compiler (default x86_64-w64-mingw32-gcc); without one,
# demo.dll is left as it is.
#
# libdemo.so: -nostdlib: no libc, no crt files, so the library needs
# nothing privload cannot resolve yet. -z relro -z now: a PT_GNU_RELRO and
# JUMP_SLOTs bound at load time. --hash-style=both: DT_GNU_HASH and
# DT_HASH, so both lookups are exercised. --build-id=none and
# -ffile-prefix-map keep the output independent of where and when it is
# built.
#
# demo.dll: -nostdlib with DllMain as the entry point, as privload's PE
# fixtures (privload/testdata/pe/build.sh): mingw's CRT start-up would add
# a TLS directory, which privload refuses. -mno-stack-arg-probe and
# -fno-tree-loop-distribute-patterns keep gcc from calling ___chkstk_ms or
# memset, which nothing provides. No timestamp and a fixed image base
# (never the one privload loads it at) make the build reproducible.
set -eu
dir=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$dir/libdemo.so"}
dllout=${2:-"$dir/demo.dll"}
${CC:-gcc} -shared -fPIC -nostdlib -O2 \
	-fno-stack-protector -fno-asynchronous-unwind-tables \
	-ffile-prefix-map="$dir"=. \
	-Wl,-z,relro,-z,now -Wl,--hash-style=both -Wl,--build-id=none \
	-Wl,-soname,libdemo.so \
	-o "$out" "$dir/c/libdemo.c"

mingw=${MINGW:-x86_64-w64-mingw32-gcc}
if ! command -v "$mingw" >/dev/null 2>&1; then
	echo "build.sh: no $mingw: demo.dll not rebuilt" >&2
	exit 0
fi
"$mingw" -O2 -Wall -Werror -shared -s -nostdlib -fno-stack-protector -mno-stack-arg-probe \
	-fno-tree-loop-distribute-patterns -fno-ident -ffile-prefix-map="$dir"=. \
	-Wl,-e,DllMain -Wl,--no-insert-timestamp -Wl,--disable-auto-image-base \
	-Wl,--disable-auto-import -Wl,--dynamicbase -Wl,--image-base,0x6b5c00000 \
	-o "$dllout" "$dir/c/demo.c"

#!/bin/sh
# Rebuilds libdemo.so from c/libdemo.c (kept in a directory of its own: a
# .c file beside Go files would make the package a cgo package).
# Usage: build.sh [OUT] (default: libdemo.so beside this script). CC
# overrides the compiler (default gcc).
#
# -nostdlib: no libc, no crt files, so the library needs nothing privload
# cannot resolve yet. -z relro -z now: a PT_GNU_RELRO and JUMP_SLOTs bound at
# load time. --hash-style=both: DT_GNU_HASH and DT_HASH, so both lookups are
# exercised. --build-id=none and -ffile-prefix-map keep the output
# independent of where and when it is built.
set -eu
dir=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$dir/libdemo.so"}
${CC:-gcc} -shared -fPIC -nostdlib -O2 \
	-fno-stack-protector -fno-asynchronous-unwind-tables \
	-ffile-prefix-map="$dir"=. \
	-Wl,-z,relro,-z,now -Wl,--hash-style=both -Wl,--build-id=none \
	-Wl,-soname,libdemo.so \
	-o "$out" "$dir/c/libdemo.c"

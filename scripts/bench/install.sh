#!/usr/bin/env bash
# Installs, with apt-get, what `reachvm bench kernels` and `reachvm bench
# programs` compare reachvm with and run, where it is missing: the peers
# (valgrind, qemu-user's qemu-x86_64) and the benchmark's programs (xz,
# sqlite3, python3, bzip2, perl, jq; gzip and sha256sum come with the
# base system). Root only; prints what it installs, or that nothing was
# missing. `reachvm bench ... --install` does the same for what a run
# needs.
set -euo pipefail

declare -A pkg=(
	[valgrind]=valgrind [qemu-x86_64]=qemu-user
	[xz]=xz-utils [sqlite3]=sqlite3 [python3]=python3 [bzip2]=bzip2
	[perl]=perl [jq]=jq [gzip]=gzip [sha256sum]=coreutils
)
want=()
for bin in "${!pkg[@]}"; do
	command -v "$bin" >/dev/null || want+=("${pkg[$bin]}")
done
if [ ${#want[@]} -eq 0 ]; then
	echo "bench peers and programs: all installed"
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "missing ${want[*]}: run as root to install them" >&2
	exit 1
fi
echo "installing ${want[*]}"
timeout 300 apt-get -o DPkg::Lock::Timeout=300 update -q >/dev/null
DEBIAN_FRONTEND=noninteractive timeout 900 apt-get -o DPkg::Lock::Timeout=300 \
	install -y -q --no-install-recommends "${want[@]}" >/dev/null

#!/usr/bin/env bash
# scripts/wine/run.sh: run one Windows executable under Wine, in the prefix
# (and with the ProcessPrng shim) that scripts/wine/test.sh uses.
#
# Usage: scripts/wine/run.sh program.exe [argument ...]
#
# The program's standard output and error are passed through and its exit
# status is the script's; set-up progress goes to standard error, so that
# the program's output (e.g. JSON) can be piped. reachvm strategies
# --backend wine uses it. Environment: REACHVM_WINEPREFIX as for test.sh,
# REACHVM_WINE_TIMEOUT bounds the whole run in seconds (default 1800).
set -euo pipefail

if [[ -z "${REACHVM_WINE_INNER:-}" ]]; then
	export REACHVM_WINE_INNER=1
	exec timeout --kill-after=30 "${REACHVM_WINE_TIMEOUT:-1800}" bash "$0" "$@"
fi
[[ $# -ge 1 ]] || { echo "usage: $0 program.exe [argument ...]" >&2; exit 2; }
exe=$(realpath "$1")
shift
[[ -f "$exe" ]] || { echo "$0: no such program: $exe" >&2; exit 2; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WINE_LOG_FD=2
# shellcheck source=scripts/wine/lib.sh
source "$repo/scripts/wine/lib.sh"
wine_setup

log "running $exe $*"
set +e
wine_run "$exe" "$@"
rc=$?
set -e
exit $rc

#!/usr/bin/env bash
# bench/closedloop-real.sh — the closed loop for real (issue #14): the same
# replayed morning through the real proxy, shop processes and local scaler,
# once with the autoscaler alone (--control reactive) and once with the
# coordinator and the predictive controller (--control predictive), same
# seed; prints each run's summary and the comparison table (SLO-violation
# minutes, errors, p99, instance-minutes).
#
# Loopback only; every process is the demo's and ends with it; bounded by
# --duration (plus the controller's training, ~10–20 s). It wants a fairly
# quiet machine: the demo runs up to ~25 shop processes, the proxy and the
# load generator on the machine's cores, and a starved process looks like a
# slow one. The load average before and after is printed.
set -euo pipefail

DURATION="${DURATION:-3m}"
SEED="${SEED:-1}"
FROM="${FROM:-}"
EXTRA=()

usage() {
	cat <<USAGE
usage: bench/closedloop-real.sh [--duration 3m] [--seed N] [--from "1995-07-13 06:30"] [-- extra lbsys demo flags]

Runs lbsys demo --control reactive, then --control predictive, with the same
seed, and prints the comparison. Environment variables DURATION, SEED and FROM
work too.
USAGE
}

while [ $# -gt 0 ]; do
	case "$1" in
	--duration) DURATION="$2"; shift 2 ;;
	--seed) SEED="$2"; shift 2 ;;
	--from) FROM="$2"; shift 2 ;;
	--) shift; EXTRA=("$@"); break ;;
	-h | --help) usage; exit 0 ;;
	*) echo "closedloop-real.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
	esac
done

cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
work="$(mktemp -d /tmp/lbsys-closedloop-real.XXXXXX)"
trap 'rm -rf "$work"' EXIT
go build -o "$work/lbsys" ./cmd/lbsys
args=(--duration "$DURATION" --seed "$SEED" --listen 127.0.0.1:0 --admin 127.0.0.1:0 --state-dir "$work/state")
if [ -n "$FROM" ]; then
	args+=(--from "$FROM")
fi
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for control in reactive predictive; do
	echo "=== lbsys demo --control $control ${args[*]} ${EXTRA[*]:-}" >&2
	"$work/lbsys" demo --control "$control" "${args[@]}" "${EXTRA[@]}" >"$work/$control.log" 2>&1 || {
		echo "lbsys demo --control $control failed:" >&2
		tail -40 "$work/$control.log" >&2
		exit 1
	}
	sed -n '/^summary/,$p' "$work/$control.log"
	echo
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

#!/usr/bin/env bash
# bench/ab.sh: CPU per request of two lbsys builds, measured side by side.
#
# Both proxies run at the same time, pinned to the same core, each loaded by
# its own wrk; per round the script reads each proxy's CPU time and request
# count and prints their CPU per request and the ratio B ÷ A. Whatever the
# shared machine does during a round (another tenant, frequency changes)
# falls on both alike, so the ratio resolves differences of about 1 %, where
# runs one after the other (bench/peers.sh) move by 10 % or more between
# rounds. It answers "is this change cheaper", not "how fast is lbsys":
# the two proxies share a core, and the kernel shares it out by thread, so
# their request rates are not comparable; only CPU per request is.
#
# Usage: bench/ab.sh [options] A B
#   A, B: an lbsys binary, or a git revision of this repository (built into
#   a temporary directory from a worktree). bench/ab.sh HEAD~1 HEAD compares
#   the last commit with its parent; bench/ab.sh HEAD . compares the
#   working tree with HEAD ("." builds the working tree).
set -euo pipefail

ROUNDS=6
DURATION=8
CONNECTIONS=32
PROXY_CPU=0
LOAD_CPU=1
BASE_PORT=18300

usage() {
	cat <<EOF
usage: bench/ab.sh [options] A B

A and B are lbsys binaries or git revisions ("." is the working tree).
Both proxies (lbsys proxy, all features on as in bench/peers.sh) run at
once on core --proxy-cpu, each behind its own wrk -t1 -c--connections on
--load-cpu, with bench/backend's three origins; per round it prints each
one's CPU microseconds per request and B ÷ A, then the median ratio and
its range.

options:
  --rounds N        rounds (default $ROUNDS)
  --duration S      measured seconds per round (default $DURATION)
  --connections N   wrk connections per proxy (default $CONNECTIONS)
  --proxy-cpu N     core of both proxies (default $PROXY_CPU)
  --load-cpu N      core of wrk and the origins (default $LOAD_CPU)
  --base-port P     first of the 7 ports used on 127.0.0.1 (default $BASE_PORT)
  --help            this text
EOF
}

die() { echo "bench/ab.sh: $*" >&2; exit 2; }
is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }

ARGS=()
while [ $# -gt 0 ]; do
	case "$1" in
	--rounds) ROUNDS="${2:?}"; shift ;;
	--duration) DURATION="${2:?}"; shift ;;
	--connections) CONNECTIONS="${2:?}"; shift ;;
	--proxy-cpu) PROXY_CPU="${2:?}"; shift ;;
	--load-cpu) LOAD_CPU="${2:?}"; shift ;;
	--base-port) BASE_PORT="${2:?}"; shift ;;
	--help | -h) usage; exit 0 ;;
	-*) die "unknown option $1 (see --help)" ;;
	*) ARGS+=("$1") ;;
	esac
	shift
done
[ "${#ARGS[@]}" -eq 2 ] || { usage >&2; exit 2; }
for v in "$ROUNDS" "$DURATION" "$CONNECTIONS" "$PROXY_CPU" "$LOAD_CPU" "$BASE_PORT"; do
	is_uint "$v" || die "'$v' is not a whole number"
done
[ "$ROUNDS" -ge 1 ] && [ "$ROUNDS" -le 50 ] || die "--rounds must be 1 to 50"
[ "$DURATION" -ge 2 ] && [ "$DURATION" -le 120 ] || die "--duration must be 2 to 120 seconds"
for tool in wrk taskset go git bc; do
	command -v "$tool" >/dev/null || die "$tool is not installed (bench/peers.sh installs wrk: apt-get install -y wrk)"
done

cd "$(git rev-parse --show-toplevel)"
TMP=$(mktemp -d /tmp/lbsys-ab.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	git worktree prune 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT

# build NAME SPEC: an lbsys binary at $TMP/NAME from a path, "." or a revision.
build() {
	local name=$1 spec=$2
	if [ -f "$spec" ] && [ -x "$spec" ]; then
		cp "$spec" "$TMP/$name"
	elif [ "$spec" = . ]; then
		timeout 300 go build -o "$TMP/$name" ./cmd/lbsys || die "building the working tree failed"
	else
		git rev-parse --verify -q "$spec^{commit}" >/dev/null || die "'$spec' is neither an executable nor a git revision"
		git worktree add -q --detach "$TMP/src-$name" "$spec" || die "git worktree add $spec failed"
		(cd "$TMP/src-$name" && timeout 300 go build -o "$TMP/$name" ./cmd/lbsys) || die "building $spec failed"
		git worktree remove --force "$TMP/src-$name"
	fi
}
build A "${ARGS[0]}"
build B "${ARGS[1]}"
timeout 300 go build -o "$TMP/backend" ./bench/backend || die "building bench/backend failed"

B1=$BASE_PORT B2=$((BASE_PORT + 1)) B3=$((BASE_PORT + 2))
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in $(seq "$BASE_PORT" $((BASE_PORT + 6))); do
	port_free "$p" || die "port $p is in use (choose others with --base-port)"
done

# config NAME LISTEN ADMIN: the lbsys peer of bench/peers.sh (all features
# on; its admission floor above the load's connections).
config() {
	cat >"$TMP/$1.yaml" <<EOF
admin:
  listen: 127.0.0.1:$3
listeners:
  - listen: 127.0.0.1:$2
    routes:
      - service: app
services:
  - name: app
    policy: round_robin
    endpoints:
      - {address: 127.0.0.1:$B1}
      - {address: 127.0.0.1:$B2}
      - {address: 127.0.0.1:$B3}
    admission: {min_limit: 100, initial_limit: 100}
    health:
      active:
        path: /healthz
        interval: 5s
EOF
}
PORT_A=$((BASE_PORT + 3)) PORT_B=$((BASE_PORT + 4))
config A "$PORT_A" $((BASE_PORT + 5))
config B "$PORT_B" $((BASE_PORT + 6))

taskset -c "$LOAD_CPU" "$TMP/backend" -ports "$B1,$B2,$B3" >"$TMP/backend.log" 2>&1 </dev/null &
PIDS+=($!)

wait_ok() {
	local i
	for i in $(seq 50); do
		[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/" 2>/dev/null)" = 200 ] && return 0
		sleep 0.1
	done
	return 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
reqs() { awk '/requests in/ {print $1}' "$1"; }

echo "A: ${ARGS[0]}    B: ${ARGS[1]}"
echo "$ROUNDS round(s) × ${DURATION}s, both proxies on core $PROXY_CPU, wrk -t1 -c$CONNECTIONS each and the origins on core $LOAD_CPU"
printf '%-6s %12s %12s %8s\n' round "A µs/req" "B µs/req" "B ÷ A"
RATIOS=()
for r in $(seq "$ROUNDS"); do
	taskset -c "$PROXY_CPU" "$TMP/A" proxy --config "$TMP/A.yaml" >"$TMP/A.log" 2>&1 </dev/null &
	PA=$!
	taskset -c "$PROXY_CPU" "$TMP/B" proxy --config "$TMP/B.yaml" >"$TMP/B.log" 2>&1 </dev/null &
	PB=$!
	PIDS+=("$PA" "$PB")
	wait_ok "$PORT_A" || { cat "$TMP/A.log" >&2; die "proxy A did not answer 200 within 5s"; }
	wait_ok "$PORT_B" || { cat "$TMP/B.log" >&2; die "proxy B did not answer 200 within 5s"; }
	# Warm-up, then the measured run, both proxies loaded at once.
	taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d2s "http://127.0.0.1:$PORT_A/" >/dev/null &
	W=$!
	taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d2s "http://127.0.0.1:$PORT_B/" >/dev/null
	wait "$W"
	a0=$(cpu_ticks "$PA") b0=$(cpu_ticks "$PB")
	taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" "http://127.0.0.1:$PORT_A/" >"$TMP/wrk-A.out" &
	W=$!
	taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" "http://127.0.0.1:$PORT_B/" >"$TMP/wrk-B.out"
	wait "$W"
	a1=$(cpu_ticks "$PA") b1=$(cpu_ticks "$PB")
	kill "$PA" "$PB"
	wait "$PA" "$PB" 2>/dev/null || true
	ra=$(reqs "$TMP/wrk-A.out") rb=$(reqs "$TMP/wrk-B.out")
	[ -n "$ra" ] && [ -n "$rb" ] && [ "$ra" -gt 0 ] && [ "$rb" -gt 0 ] || die "round $r: wrk reported no requests"
	tick=$(getconf CLK_TCK)
	ua=$(echo "scale=3; ($a1 - $a0) * 1000000 / $tick / $ra" | bc)
	ub=$(echo "scale=3; ($b1 - $b0) * 1000000 / $tick / $rb" | bc)
	ratio=$(echo "scale=4; $ub / $ua" | bc)
	RATIOS+=("$ratio")
	printf '%-6s %12s %12s %8.3f\n' "$r" "$ua" "$ub" "$ratio"
done
printf '%s\n' "${RATIOS[@]}" | sort -n | awk '
	{ v[NR] = $1 }
	END {
		m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		printf "B ÷ A, CPU per request: median %.3f (range %.3f to %.3f over %d rounds)\n", m, v[1], v[NR], NR
	}'

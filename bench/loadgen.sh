#!/usr/bin/env bash
# bench/loadgen.sh — how many requests per second `lbsys load` sustains on
# one core: the generator pinned alone on core 0 (taskset), bench/backend (a
# trivial 1 KiB server) pinned on core 1, open-loop `--mode requests` at each
# rate for a fixed duration. Prints, per run, the achieved rate, late sends,
# drops, latency, and the generator's CPU seconds read from /proc.
#
# A rate is "sustained" when the generator sent at least 99% of the target
# (achieved vs target), dropped none, and sent 99% of the requests within
# 5 ms of their scheduled time (lag p99 <= 5 ms). Lag p99 rather than the
# late count: on a shared VM the cores stall now and then for tens of ms (a
# pinned busy loop sees it too), which makes some sends late however fast the
# generator is; a generator that cannot keep up falls behind for good and its
# lag p99 grows to seconds. The "others" column is the CPU time other
# processes (other tenants) took on the generator's core during the run.
#
# Loopback only. Kills only the processes it started. Bounded by
# --max-seconds. See --help.
set -euo pipefail

RATES="40000"
DURATION="10s"
ROUNDS=1
PORT=18001
GEN_CPU=0
BACKEND_CPU=1
MAX_SECONDS=300
COALESCE=""
EXTRA=()

usage() {
	cat <<'EOF'
Usage: bench/loadgen.sh [options] [-- extra lbsys load flags]

Runs `lbsys load --mode requests --rate R --duration D` pinned on one core
(taskset -c GEN_CPU) against bench/backend pinned on another (BACKEND_CPU),
both on 127.0.0.1, and prints a table: target and achieved rate, late sends,
lag, drops, p50/p99 latency, the generator's CPU seconds (utime + stime from
/proc/PID/stat, sampled until it exits) with CPU per request, and the CPU
other processes took on the generator's core.

Options:
  --rates LIST      comma-separated target rates. Default 40000.
                    e.g. --rates 10000,20000,30000,40000 to find the limit
  --duration D      each run's length (Ns or Nm). Default 10s.
  --rounds N        runs per rate (order reversed every other round). Default 1.
  --port P          backend port on 127.0.0.1. Default 18001.
  --gen-cpu N       core for the generator. Default 0.
  --backend-cpu N   core for the backend. Default 1.
  --coalesce D      pass --coalesce D to lbsys load (default: its default).
  --max-seconds N   hard bound on the whole script. Default 300.
  -h, --help        this text.

Exit: 0 when every run completed, 1 on a failed run, 124 at --max-seconds.
EOF
}

while [ $# -gt 0 ]; do
	case "$1" in
	--rates) RATES=$2; shift 2 ;;
	--duration) DURATION=$2; shift 2 ;;
	--rounds) ROUNDS=$2; shift 2 ;;
	--port) PORT=$2; shift 2 ;;
	--gen-cpu) GEN_CPU=$2; shift 2 ;;
	--backend-cpu) BACKEND_CPU=$2; shift 2 ;;
	--coalesce) COALESCE=$2; shift 2 ;;
	--max-seconds) MAX_SECONDS=$2; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	--) shift; EXTRA=("$@"); break ;;
	*) echo "loadgen.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
done

log() { echo "loadgen.sh: $*" >&2; }
die() { log "$*"; exit 1; }

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
command -v taskset >/dev/null || die "taskset (util-linux) is required"
NCPU=$(nproc --all)
[ "$GEN_CPU" -lt "$NCPU" ] && [ "$BACKEND_CPU" -lt "$NCPU" ] || die "need CPUs $GEN_CPU and $BACKEND_CPU (have $NCPU)"
case "$DURATION" in
*m) DUR_S=$((${DURATION%m} * 60)) ;;
*s) DUR_S=${DURATION%s} ;;
*) die "--duration $DURATION: use Ns or Nm" ;;
esac
[[ "$DUR_S" =~ ^[0-9]+$ ]] && [ "$DUR_S" -gt 0 ] || die "--duration $DURATION: use whole seconds or minutes"
CLK_TCK=$(getconf CLK_TCK)
START=$(date +%s)
TMP=$(mktemp -d /tmp/lbsys-loadgen.XXXXXX)
STARTED_PIDS=()

cleanup() {
	local rc=$? p
	trap - EXIT INT TERM
	for p in "${STARTED_PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${STARTED_PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

left() { echo $((MAX_SECONDS - ($(date +%s) - START))); }
check_budget() { [ "$(left)" -gt 0 ] || { log "stopped at --max-seconds=$MAX_SECONDS"; exit 124; }; }

ticks() { # ticks PID -> utime+stime (fields 14, 15 of /proc/PID/stat)
	local s rest f
	{ read -r s <"/proc/$1/stat"; } 2>/dev/null || return 1
	rest=${s##*) }
	read -ra f <<<"$rest"
	echo $((f[11] + f[12]))
}

core_busy() { # core_busy N -> non-idle ticks of core N (user nice system irq softirq steal)
	awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat
}

# The summary is indented JSON: top-level keys have two spaces, so these
# small readers need no JSON tool.
json_num() { # json_num FILE KEY -> a top-level number
	sed -n "s/^  \"$2\": \\([-0-9.e+]*\\),*\$/\\1/p" "$1" | head -1
}
json_in() { # json_in FILE BLOCK KEY -> BLOCK.KEY of a top-level object
	awk -v b="  \"$2\": {" -v k="\"$3\":" '$0 == b { inb = 1; next }
		inb && $1 == k { gsub(",", "", $2); print $2; exit }
		inb && /^  }/ { exit }' "$1"
}

log "building lbsys and bench/backend into $TMP"
go build -o "$TMP/lbsys" ./cmd/lbsys
go build -o "$TMP/backend" ./bench/backend

if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
	die "port $PORT is already in use; choose another with --port"
fi
taskset -c "$BACKEND_CPU" "$TMP/backend" -ports "$PORT" >"$TMP/backend.log" 2>&1 &
BACKEND_PID=$!
STARTED_PIDS+=("$BACKEND_PID")
for _ in $(seq 50); do
	(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
	sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || die "backend did not start: $(cat "$TMP/backend.log")"
log "backend PID $BACKEND_PID on 127.0.0.1:$PORT, core $BACKEND_CPU; generator on core $GEN_CPU"

IFS=, read -ra RATE_LIST <<<"$RATES"
ROWS=()
FAILED=0
run_one() { # run_one RATE ROUND
	local rate=$1 round=$2 out="$TMP/run-$1-$2.json" err="$TMP/run-$1-$2.err"
	# --max-error-rate 0: drops past the ceiling are data here, not a failure.
	local args=(load --target "http://127.0.0.1:$PORT" --mode requests --rate "$rate" --duration "$DURATION"
		--format json --quiet --max-error-rate 0)
	[ -n "$COALESCE" ] && args+=(--coalesce "$COALESCE")
	args+=("${EXTRA[@]}")
	local b0 b1 c0 c1 g0 g1=0 t
	b0=$(ticks "$BACKEND_PID")
	c0=$(core_busy "$GEN_CPU")
	taskset -c "$GEN_CPU" "$TMP/lbsys" "${args[@]}" >"$out" 2>"$err" &
	local pid=$!
	STARTED_PIDS+=("$pid")
	g0=$(ticks "$pid" || echo 0)
	# Sample the generator's CPU until it exits (/proc/PID/stat is gone
	# afterwards; what it spends in its last 0.1 s, printing, is small).
	while t=$(ticks "$pid"); do
		g1=$t
		if [ "$(left)" -le 0 ]; then kill -TERM "$pid" 2>/dev/null || true; fi
		sleep 0.1
	done
	local rc=0
	wait "$pid" || rc=$?
	local keep=() p
	for p in "${STARTED_PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
	STARTED_PIDS=("${keep[@]}")
	b1=$(ticks "$BACKEND_PID")
	c1=$(core_busy "$GEN_CPU")
	if [ "$rc" != 0 ] || [ ! -s "$out" ]; then
		log "rate $rate: lbsys load exited $rc: $(tail -3 "$err")"
		FAILED=1
		return
	fi
	local requests achieved late maxlag lag99 dropped p50 p99 self_cpu
	requests=$(json_num "$out" requests)
	achieved=$(json_num "$out" achieved_rps)
	late=$(json_num "$out" late)
	maxlag=$(json_num "$out" max_lag_ms)
	self_cpu=$(json_num "$out" process_cpu_s)
	dropped=$(json_in "$out" errors dropped)
	p50=$(json_in "$out" latency_ms p50)
	p99=$(json_in "$out" latency_ms p99)
	lag99=$(json_in "$out" lag_ms p99)
	ROWS+=("$(awk -v r="$rate" -v a="$achieved" -v n="$requests" -v l="$late" -v ml="$maxlag" -v l99="$lag99" \
		-v d="$dropped" -v p50="$p50" -v p99="$p99" -v g="$((g1 - g0))" -v b="$((b1 - b0))" \
		-v o="$((c1 - c0 - (g1 - g0)))" -v hz="$CLK_TCK" -v sc="$self_cpu" -v dur="$DUR_S" \
		'BEGIN {
			gs = g / hz; bs = b / hz; os = (o > 0 ? o : 0) / hz
			ok = (a >= 0.99 * r && d == 0 && l99 <= 5) ? "yes" : "no"
			printf "| %d | %.0f | %d | %.3f | %.1f | %d | %.3f | %.3f | %.2f (%.2f) | %.0f%% | %.1f | %.2f | %.2f | %s |", \
				r, a, l, l99, ml, d, p50, p99, gs, sc, 100 * gs / dur, (n > 0 ? 1e6 * gs / n : 0), bs, os, ok
		}')")
	log "rate $rate round $round: ${ROWS[-1]}"
}

for round in $(seq "$ROUNDS"); do
	list=("${RATE_LIST[@]}")
	if [ $((round % 2)) = 0 ]; then
		mapfile -t list < <(printf '%s\n' "${RATE_LIST[@]}" | tac)
	fi
	for rate in "${list[@]}"; do
		check_budget
		run_one "$rate" "$round"
	done
done

echo
echo "lbsys load on core $GEN_CPU, bench/backend on core $BACKEND_CPU, --mode requests, $DURATION per run, $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| target/s | achieved/s | late | lag p99 ms | max lag ms | dropped | p50 ms | p99 ms | gen CPU s (self) | gen core % | gen CPU µs/req | backend CPU s | others on gen core s | sustained |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
echo
echo "sustained: achieved >= 99% of target, no drops, lag p99 <= 5 ms (late: sends more than 5 ms behind schedule)."
echo "gen CPU s: utime+stime of the generator from /proc/PID/stat (in parentheses: its own getrusage figure)."
echo "others on gen core: non-idle ticks of that core in /proc/stat (tick-sampled) minus the generator's."
exit "$FAILED"

#!/usr/bin/env bash
# bench/policies.sh — the balancing policies against each other on the same
# open-loop load (BENCHMARKS.md, "Policies and decision quality"):
# 6 catalog instances of `lbsys shop` on loopback, 2 of them at half speed;
# for each policy an `lbsys proxy` in front and `lbsys load` sending product
# requests at 80% of the pool's total capacity for 30 s with the same seed
# (so the same arrival schedule for every policy). Prints a table of
# p50/p99/p99.9, errors, sheds and the share of traffic the slow instances
# got. Loopback only; kills only what it started; bounded in time.
set -euo pipefail

POLICIES="round_robin,random,least_request,peak_ewma,prequal,weighted,ring_hash,maglev"
DURATION=30s
WARMUP=5s
WORKERS=8
LATENCY=20ms
CV=0.5
LOAD_PCT=80
SEED=1
BASE_PORT=19101
PROXY_PORT=19180
ADMIN_PORT=19181
ADMISSION=1
MAX_SECONDS=900

usage() {
	cat <<'EOF'
Usage: bench/policies.sh [options]

Runs every policy in turn against the same open-loop load on 6 catalog
instances of `lbsys shop` (2 at half speed) and prints a Markdown table.

Options:
  --policies LIST    comma-separated policies (default round_robin,random,least_request,peak_ewma,prequal,weighted,ring_hash,maglev)
  --duration D       measured run per policy (default 30s)
  --warmup D         unmeasured run before it, same rate (default 5s)
  --load-pct P       offered load as % of total capacity (default 80)
  --workers N        workers per instance (default 8)
  --latency D        mean service time (default 20ms); capacity per full-speed
                     instance = workers / latency
  --cv X             service time coefficient of variation (default 0.5)
  --seed N           arrival schedule seed (default 1)
  --no-admission     run without admission control
  --base-port P      first shop port (default 19101; 6 consecutive ports)
  --max-seconds S    give up after S seconds (default 900)
  -h, --help         this text
EOF
}

while [ $# -gt 0 ]; do
	case "$1" in
	--policies) POLICIES="${2:?}"; shift ;;
	--duration) DURATION="${2:?}"; shift ;;
	--warmup) WARMUP="${2:?}"; shift ;;
	--load-pct) LOAD_PCT="${2:?}"; shift ;;
	--workers) WORKERS="${2:?}"; shift ;;
	--latency) LATENCY="${2:?}"; shift ;;
	--cv) CV="${2:?}"; shift ;;
	--seed) SEED="${2:?}"; shift ;;
	--no-admission) ADMISSION=0 ;;
	--base-port) BASE_PORT="${2:?}"; shift ;;
	--max-seconds) MAX_SECONDS="${2:?}"; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "policies.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done

command -v python3 >/dev/null || { echo "policies.sh: needs python3 to read JSON" >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d /tmp/lbsys-policies.XXXXXX)
PIDS=()
WATCHDOG=""
cleanup() {
	if [ -n "$WATCHDOG" ]; then
		pkill -P "$WATCHDOG" 2>/dev/null || true
		kill "$WATCHDOG" 2>/dev/null || true
	fi
	for p in "${PIDS[@]:-}"; do
		[ -n "$p" ] && kill "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]:-}"; do
		[ -n "$p" ] && wait "$p" 2>/dev/null || true
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
# Watchdog: its sleep is killed with it (by parent PID) so that nothing of
# ours outlives the script.
( sleep "$MAX_SECONDS"; echo "policies.sh: over --max-seconds $MAX_SECONDS; stopping" >&2; kill -TERM $$ ) </dev/null >/dev/null 2>&1 &
WATCHDOG=$!

log() { echo "policies.sh: $*" >&2; }

log "building lbsys"
(cd "$ROOT" && go build -o "$TMP/lbsys" ./cmd/lbsys)

# Capacity: workers / latency per full-speed instance; half for the slow two.
lat_s=$(python3 -c "import re,sys; v='$LATENCY'; m=re.fullmatch(r'([0-9.]+)(ms|s|us)',v); f={'ms':1e-3,'s':1,'us':1e-6}[m.group(2)]; print(float(m.group(1))*f)")
RATE=$(python3 -c "cap=4*$WORKERS/$lat_s + 2*$WORKERS/$lat_s*0.5; print(round(cap*$LOAD_PCT/100))")
CAP=$(python3 -c "print(round(4*$WORKERS/$lat_s + 2*$WORKERS/$lat_s*0.5))")
log "pool capacity ≈ $CAP req/s; offered load $RATE req/s ($LOAD_PCT%)"

ENDPOINTS=""
for i in 0 1 2 3 4 5; do
	ENDPOINTS+="      - {address: 127.0.0.1:$((BASE_PORT + i))}"$'\n'
done
taskset -c 1 "$TMP/lbsys" shop --service catalog --instances 6 --base-port "$BASE_PORT" \
	--speeds 1,1,1,1,0.5,0.5 --workers "$WORKERS" --latency "$LATENCY" --cv "$CV" --warmup 0s \
	--seed "$SEED" >"$TMP/shop.log" 2>&1 &
SHOP=$!
PIDS+=($SHOP)
for _ in $(seq 50); do
	curl -fsS "http://127.0.0.1:$((BASE_PORT + 5))/healthz" >/dev/null 2>&1 && break
	sleep 0.1
done

row() { # policy -> prints a table row
	local policy=$1 adm=""
	[ "$ADMISSION" = 1 ] && adm="    admission: {initial_limit: 100, max_limit: 1000}"
	cat >"$TMP/proxy.yaml" <<EOF
admin: {listen: 127.0.0.1:$ADMIN_PORT}
listeners:
  - {name: main, listen: 127.0.0.1:$PROXY_PORT, routes: [{service: catalog}]}
services:
  - name: catalog
    priority: normal
    policy: $policy
    endpoints:
$ENDPOINTS    retries: {attempts: 0}
$adm
EOF
	taskset -c 0 "$TMP/lbsys" proxy --config "$TMP/proxy.yaml" >"$TMP/proxy-$policy.log" 2>&1 &
	local px=$!
	PIDS+=($px)
	for _ in $(seq 50); do
		curl -fsS "http://127.0.0.1:$ADMIN_PORT/healthz" >/dev/null 2>&1 && break
		sleep 0.1
	done
	# --max-error-rate 0: the sheds and errors of a weak policy are what is measured.
	local load=("$TMP/lbsys" load --target "http://127.0.0.1:$PROXY_PORT" --mode requests --mix product=1 \
		--rate "$RATE" --seed "$SEED" --quiet --format json --timeout 5s --max-error-rate 0)
	taskset -c 0 "${load[@]}" --duration "$WARMUP" >/dev/null
	taskset -c 0 "${load[@]}" --duration "$DURATION" >"$TMP/$policy.json"
	curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" >"$TMP/$policy.metrics"
	kill "$px"
	wait "$px" 2>/dev/null || true
	python3 - "$TMP/$policy.json" "$TMP/$policy.metrics" "$policy" "$BASE_PORT" <<'PY'
import json, re, sys
s = json.load(open(sys.argv[1]))
metrics = open(sys.argv[2]).read()
policy, base = sys.argv[3], int(sys.argv[4])
per = {}
for m in re.finditer(r'lbsys_requests_total\{code="(\d+)",endpoint="127\.0\.0\.1:(\d+)",route="[^"]*",service="catalog"\} (\S+)', metrics):
    per[int(m.group(2))] = per.get(int(m.group(2)), 0) + float(m.group(3))
total = sum(per.values()) or 1
slow = (per.get(base + 4, 0) + per.get(base + 5, 0)) / total
sheds = sum(float(x) for x in re.findall(r'lbsys_admission_rejected_total\{[^}]*\} (\S+)', metrics))
l, e = s["latency_ms"], s["errors"]
errs = e["total"] - e["status_5xx"] + (e["status_5xx"] - sheds if e["status_5xx"] >= sheds else 0)
print(f"| {policy} | {s['achieved_rps']:.0f} | {l['p50']:.1f} | {l['p99']:.1f} | {l['p99_9']:.1f} | {int(errs)} | {int(sheds)} | {slow*100:.1f}% |")
PY
}

echo
echo "### Policies, 6 catalog instances (2 at half speed), ${LOAD_PCT}% of capacity ($RATE req/s of ≈$CAP), open loop, ${DURATION} each, seed $SEED"
echo
echo "| policy | req/s | p50 ms | p99 ms | p99.9 ms | errors | sheds | share to slow pair (fair: 14.3%) |"
echo "|---|---|---|---|---|---|---|---|"
IFS=, read -ra list <<<"$POLICIES"
for p in "${list[@]}"; do
	log "running $p"
	row "$p"
done
echo
echo "Latency from each request's scheduled send (no coordinated omission). Sheds: 503s from admission control. The slow pair has 1/7 of the capacity (14.3%)."

#!/usr/bin/env bash
# bench/sim2real.sh — the sim-to-real check of the simulator (issue #5): the
# same small scenario run for real on loopback and in `lbsys sim`, per
# policy, and a table comparing them.
#
# Real: 6 catalog instances of `lbsys shop` (8 workers, 20ms log-normal
# service time with cv 0.5, queue 64 / 500ms, two of them at half speed, no
# warm-up), one `lbsys proxy` per policy in front (no retries, default
# health: outlier ejection on), and `lbsys load` sending independent product
# requests open-loop: a base rate multiplied by a flash sale (rise, plateau,
# fall) within a 60s run, the same seed for every policy. Simulated: the
# same scenario written as a sim YAML (internal/sim), same seed, with the
# shop's service time as measured at low load before the runs (the nominal
# one is simulated too and printed for reference). The check
# passes when every p50 is within 25% and the policies rank the same by p99
# (every pair the simulation separates by more than 10% comes out in the
# same order for real; the strict ranking is printed too). Loopback only; kills only what it started; bounded in time. It wants
# a fairly quiet machine (the shop's service times are real sleeps, the
# proxy and the generator need CPU on time): it prints the load average
# before and after so the conditions are on record.
set -euo pipefail

POLICIES="round_robin,least_request,peak_ewma,prequal"
DURATION=60
BASE_RATE=400
FLASH_X=3.5
FLASH_AT=15
FLASH_FOR=30
FLASH_RISE=5
FLASH_FALL=5
WORKERS=8
LATENCY_MS=20
CV=0.5
SEED=1
BASE_PORT=19201
PROXY_PORT=19280
ADMIN_PORT=19281
MAX_SECONDS=900

usage() {
	cat <<'EOF'
Usage: bench/sim2real.sh [options]

Runs the same 6-backend flash-sale scenario for real (lbsys shop + lbsys
proxy + lbsys load on loopback) and in the simulator (lbsys sim), for each
policy, and prints a Markdown table comparing p50/p99/p99.9 and the ranking.

Options:
  --policies LIST   comma-separated policies (default round_robin,least_request,peak_ewma,prequal)
  --duration S      seconds per run (default 60)
  --base-rate R     requests/s outside the sale (default 400; capacity is 2000)
  --flash-x X       factor at the sale's plateau (default 3.5: 1,400 req/s, 70% of capacity)
  --seed N          seed of arrivals and service times (default 1)
  --base-port P     first shop port (default 19201; 6 consecutive ports)
  --max-seconds S   give up after S seconds (default 900)
  -h, --help        this text
EOF
}

while [ $# -gt 0 ]; do
	case "$1" in
	--policies) POLICIES="${2:?}"; shift ;;
	--duration) DURATION="${2:?}"; shift ;;
	--base-rate) BASE_RATE="${2:?}"; shift ;;
	--flash-x) FLASH_X="${2:?}"; shift ;;
	--seed) SEED="${2:?}"; shift ;;
	--base-port) BASE_PORT="${2:?}"; shift ;;
	--max-seconds) MAX_SECONDS="${2:?}"; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "sim2real.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done

command -v python3 >/dev/null || { echo "sim2real.sh: needs python3 to read JSON" >&2; exit 2; }
command -v curl >/dev/null || { echo "sim2real.sh: needs curl" >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d /tmp/lbsys-sim2real.XXXXXX)
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
( sleep "$MAX_SECONDS"; echo "sim2real.sh: over --max-seconds $MAX_SECONDS; stopping" >&2; kill -TERM $$ ) </dev/null >/dev/null 2>&1 &
WATCHDOG=$!

log() { echo "sim2real.sh: $*" >&2; }
PIN0="" PIN1=""
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
	PIN0="taskset -c 0" PIN1="taskset -c 1"
fi

log "building lbsys"
(cd "$ROOT" && go build -o "$TMP/lbsys" ./cmd/lbsys)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# --- real -----------------------------------------------------------------
$PIN1 "$TMP/lbsys" shop --service catalog --instances 6 --base-port "$BASE_PORT" \
	--speeds 1,1,1,1,0.5,0.5 --workers "$WORKERS" --latency "${LATENCY_MS}ms" --cv "$CV" \
	--queue 64 --queue-timeout 500ms --warmup 0s --cold-factor 1 --seed "$SEED" >"$TMP/shop.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do
	curl -fsS "http://127.0.0.1:$((BASE_PORT + 5))/healthz" >/dev/null 2>&1 && break
	sleep 0.1
done
ENDPOINTS=""
for i in 0 1 2 3 4 5; do
	ENDPOINTS+="      - {address: 127.0.0.1:$((BASE_PORT + i))}"$'\n'
done

# Calibration: the shop's service time as a client sees it, at a load low
# enough for no queueing (one instance, 50 req/s on 8 workers: 12% busy).
# Timer wake-ups, scheduling and HTTP on loopback make it a little longer
# than the nominal --latency, and near saturation a few percent of capacity
# decide whether queues settle or run away, so the simulated twin uses the
# measured mean (the nominal one is simulated too, for reference).
log "calibrating the shop's service time"
$PIN0 "$TMP/lbsys" load --target "http://127.0.0.1:$BASE_PORT" --mode requests --mix product=1 \
	--rate 50 --duration 5s --seed "$SEED" --quiet --format json --max-error-rate 0 >"$TMP/calib.json"
CALIB_MS=$(python3 -c "import json; print(round(json.load(open('$TMP/calib.json'))['latency_ms']['mean'], 2))")
log "mean service time at low load: ${CALIB_MS}ms (nominal ${LATENCY_MS}ms)"

IFS=, read -ra LIST <<<"$POLICIES"
for policy in "${LIST[@]}"; do
	log "real run: $policy"
	cat >"$TMP/proxy.yaml" <<EOF
admin: {listen: 127.0.0.1:$ADMIN_PORT}
listeners:
  - {name: main, listen: 127.0.0.1:$PROXY_PORT, routes: [{service: catalog}]}
services:
  - name: catalog
    policy: $policy
    endpoints:
$ENDPOINTS    retries: {attempts: 0}
EOF
	$PIN0 "$TMP/lbsys" proxy --config "$TMP/proxy.yaml" >"$TMP/proxy-$policy.log" 2>&1 &
	px=$!
	PIDS+=($px)
	for _ in $(seq 50); do
		curl -fsS "http://127.0.0.1:$ADMIN_PORT/healthz" >/dev/null 2>&1 && break
		sleep 0.1
	done
	$PIN0 "$TMP/lbsys" load --target "http://127.0.0.1:$PROXY_PORT" --mode requests --mix product=1 \
		--rate "$BASE_RATE" --flash-sale "at=${FLASH_AT}s,for=${FLASH_FOR}s,x=$FLASH_X,rise=${FLASH_RISE}s,fall=${FLASH_FALL}s" \
		--duration "${DURATION}s" --seed "$SEED" --timeout 10s --quiet --format json --max-error-rate 0 >"$TMP/real-$policy.json"
	kill "$px"
	wait "$px" 2>/dev/null || true
	sleep 1 # let the shop's queues empty
done

# --- simulated ------------------------------------------------------------
sim_scenario() { # mean-ms -> scenario YAML
	cat <<EOF
name: sim2real
description: bench/sim2real.sh's scenario, the twin of its loopback run.
duration: ${DURATION}s
window: ${DURATION}s
load:
  rate: $BASE_RATE
  flash_sales: [{after: ${FLASH_AT}s, x: $FLASH_X, rise: ${FLASH_RISE}s, for: ${FLASH_FOR}s, fall: ${FLASH_FALL}s}]
clients: {mode: requests}
proxies:
  retries: {attempts: 0}
services:
  - name: catalog
    replicas: 6
    workers: $WORKERS
    queue: 64
    queue_timeout: 500ms
    service_time: {mean: ${1}ms, cv: $CV}
    speeds: [1, 1, 1, 1, 0.5, 0.5]
EOF
}
log "simulated runs"
sim_scenario "$CALIB_MS" >"$TMP/scenario.yaml"
sim_scenario "$LATENCY_MS" >"$TMP/scenario-nominal.yaml"
"$TMP/lbsys" sim --scenario "$TMP/scenario.yaml" --policies "$POLICIES" --seed "$SEED" \
	--out "$TMP/sim" --format json --quiet >"$TMP/sim.json"
"$TMP/lbsys" sim --scenario "$TMP/scenario-nominal.yaml" --policies "$POLICIES" --seed "$SEED" \
	--out "$TMP/sim-nominal" --format json --quiet >"$TMP/sim-nominal.json"
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$TMP" "$POLICIES" "$LOAD_BEFORE" "$LOAD_AFTER" "$BASE_RATE" "$FLASH_X" "$DURATION" "$CALIB_MS" "$LATENCY_MS" <<'PY'
import json, sys
tmp, policies, before, after, base, x, dur, calib, nominal = sys.argv[1:10]
policies = policies.split(",")
sim = {p["policy"]: p["services"][0] for p in json.load(open(f"{tmp}/sim.json"))["policies"]}
nom = {p["policy"]: p["services"][0] for p in json.load(open(f"{tmp}/sim-nominal.json"))["policies"]}
rows = []
for p in policies:
    r = json.load(open(f"{tmp}/real-{p}.json"))
    l, e = r["latency_ms"], r["errors"]
    s = sim[p]
    rows.append(dict(p=p, rp50=l["p50"], rp99=l["p99"], rp999=l["p99_9"], rerr=e["total"], rn=r["requests"],
                     sp50=s["p50_ms"], sp99=s["p99_ms"], sp999=s["p99_9_ms"], serr=s["errors"] + s["sheds"] + s["timeouts"], sn=s["requests"]))
rank = lambda key: {row["p"]: i + 1 for i, row in enumerate(sorted(rows, key=lambda r: r[key]))}
rr, sr = rank("rp99"), rank("sp99")
print(f"### Sim-to-real: 6 catalog instances (2 at half speed), {base} req/s with a x{x} flash sale, {dur}s per policy")
print()
print(f"Simulated with the shop's measured service time ({calib} ms mean at low load; nominal {nominal} ms).")
print()
print("| policy | real p50 | sim p50 | Δp50 | real p99 | sim p99 | real p99.9 | sim p99.9 | real errors | sim errors | rank by p99 real / sim |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
ok = True
for row in rows:
    d = (row["sp50"] - row["rp50"]) / row["rp50"] * 100 if row["rp50"] else float("nan")
    ok = ok and abs(d) <= 25
    print(f"| {row['p']} | {row['rp50']:.1f} | {row['sp50']:.1f} | {d:+.0f}% | {row['rp99']:.1f} | {row['sp99']:.1f} | "
          f"{row['rp999']:.1f} | {row['sp999']:.1f} | {row['rerr']} of {row['rn']} | {row['serr']} of {row['sn']} | {rr[row['p']]} / {sr[row['p']]} |")
same = all(rr[p] == sr[p] for p in policies)
# Pairwise: every pair the simulation separates by more than 10% in p99
# must come out in the same order for real (near-ties may swap on noise).
by = {row["p"]: row for row in rows}
clear, agree = 0, 0
for i, a in enumerate(policies):
    for b in policies[i + 1:]:
        sa, sb = by[a]["sp99"], by[b]["sp99"]
        if abs(sa - sb) <= 0.1 * min(sa, sb):
            continue
        clear += 1
        agree += (sa < sb) == (by[a]["rp99"] < by[b]["rp99"])
print()
print("With the nominal service time the simulation gives p50/p99 " +
      ", ".join(f"{p} {nom[p]['p50_ms']:.1f}/{nom[p]['p99_ms']:.1f}" for p in policies) + " ms.")
print()
print(f"Latency in ms (real: from each request's scheduled send, by lbsys load; simulated: from the proxy receiving it). "
      f"Ranking by p99 {'agrees' if same else 'differs'} strictly; {agree} of {clear} pairs the simulation separates by more than 10% "
      f"are in the same order for real. p50 {'all within' if ok else 'NOT all within'} 25%. "
      f"Load average before {before}, after {after} (2 cores).")
sys.exit(0 if agree == clear and ok else 1)
PY

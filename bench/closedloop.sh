#!/usr/bin/env bash
# bench/closedloop.sh — the closed loop in the simulator (issue #12): each
# announced-sale scenario (and the day without events) under every control —
# reactive (the HPA alone), predictive (lbsys), predictive_nowarm (lbsys
# with cache warming off: the cold cache), oracle (the same scaler fed
# the true future), holt_winters (a predictive-horizontal-pod-autoscaler
# peer) and hourly (an AWS-predictive-scaling-style peer) — and every
# policy, over several seeds; prints per scenario the table of mean ± sd
# (SLO-violation minutes, incidents, p99, errors, sheds, timeouts, lost
# checkouts, replica-hours, when capacity was ready for each announced
# event) and the issue's goals checked on those runs, then one summary of
# every goal.
#
# Pure simulation: no network, no process but lbsys; bounded by the
# scenarios' length. On a 2-core machine the default set takes about
# 40–60 minutes (black-friday is a simulated day); SCENARIOS, SEEDS and
# POLICIES narrow it.
set -euo pipefail

SCENARIOS="${SCENARIOS:-announced-flash-sale newsletter-drop black-friday ordinary-day}"
CONTROLS="${CONTROLS:-reactive,predictive,predictive_nowarm,oracle,holt_winters,hourly}"
POLICIES="${POLICIES:-round_robin,peak_ewma}"
SEEDS="${SEEDS:-1-5}"
PARALLEL="${PARALLEL:-2}"
OUT="${OUT:-}"

usage() {
	cat <<USAGE
usage: bench/closedloop.sh [--scenarios "a b"] [--seeds 1-5] [--policies a,b] [--controls a,b] [--parallel N] [--out DIR]

Environment variables of the same names (SCENARIOS, SEEDS, POLICIES,
CONTROLS, PARALLEL, OUT) work too. Defaults: scenarios "$SCENARIOS",
controls $CONTROLS, policies $POLICIES, seeds $SEEDS, $PARALLEL runs at once.
Writes OUT/<scenario>/ (comparison.md, comparison.json, seed-N/ with
report.md, results.json and the plots) and OUT/summary.md.
USAGE
}

while [ $# -gt 0 ]; do
	case "$1" in
	--scenarios) SCENARIOS="$2"; shift 2 ;;
	--seeds) SEEDS="$2"; shift 2 ;;
	--policies) POLICIES="$2"; shift 2 ;;
	--controls) CONTROLS="$2"; shift 2 ;;
	--parallel) PARALLEL="$2"; shift 2 ;;
	--out) OUT="$2"; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "closedloop.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
	esac
done

cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
if [ -z "$OUT" ]; then
	OUT="$(mktemp -d /tmp/lbsys-closedloop.XXXXXX)"
fi
mkdir -p "$OUT"
BIN="$OUT/lbsys"
go build -o "$BIN" ./cmd/lbsys

echo "closedloop: scenarios [$SCENARIOS], controls $CONTROLS, policies $POLICIES, seeds $SEEDS, $PARALLEL at once; writing $OUT" >&2
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
summary="$OUT/summary.md"
{
	echo "# Closed loop: goals of issue #12 per scenario"
	echo
	echo "Seeds $SEEDS; controls $CONTROLS; policies $POLICIES. Each row is checked on the mean over the seeds (per-scenario tables in <scenario>/comparison.md)."
	echo
} >"$summary"
for sc in $SCENARIOS; do
	start=$(date +%s)
	"$BIN" sim --scenario "$sc" --control "$CONTROLS" --policies "$POLICIES" --seeds "$SEEDS" \
		--parallel "$PARALLEL" --out "$OUT/$sc" --quiet >"$OUT/$sc.md"
	took=$(($(date +%s) - start))
	cat "$OUT/$sc.md"
	echo "(simulated in ${took}s)"
	echo
	{
		echo "## $sc"
		echo
		sed -n '/^### Goals/,/^### Where/p' "$OUT/$sc.md" | sed '1d;$d'
	} >>"$summary"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo
cat "$summary"

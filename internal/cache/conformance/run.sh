#!/usr/bin/env bash
# run.sh runs the HTTP caching test suite of http-tests/cache-tests (the npm
# package http-cache-tests, the suite behind cache-tests.fyi) against lbsys's
# cache on 127.0.0.1 and compares its required failures with the suite's
# published results for NGINX, Apache httpd, Varnish, Squid and ATS.
#
#   internal/cache/conformance/run.sh [SUITE_DIR] [-- extra flags for the cache]
#
# SUITE_DIR is an unpacked http-cache-tests with its dependencies installed;
# without it the script fetches http-cache-tests@0.4.5 with npm into a
# temporary directory (needs Node.js ≥ 14 and the npm registry). Every
# listener is bound to 127.0.0.1. Results: $OUT (default /tmp/lbsys-cache-tests.json).
set -euo pipefail
cd "$(dirname "$0")/../../.."
suite=${1:-}
shift || true
[[ ${1:-} == -- ]] && shift
origin_port=${ORIGIN_PORT:-18000}
cache_port=${CACHE_PORT:-18001}
out=${OUT:-/tmp/lbsys-cache-tests.json}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

if [[ -z $suite ]]; then
  (cd "$work" && npm pack --silent http-cache-tests@0.4.5 >/dev/null && tar xzf http-cache-tests-0.4.5.tgz)
  suite=$work/package
  (cd "$suite" && npm install --silent --omit=dev --no-audit --no-fund >/dev/null)
fi
# The suite's server listens on every interface; keep it on loopback.
sed 's/server.listen(port)/server.listen(port, "127.0.0.1")/' "$suite/server/server.mjs" > "$suite/server/server-loopback.mjs"
(cd "$suite" && npm_config_protocol=http npm_config_port=$origin_port npm_config_pidfile=$work/server.pid \
  exec node server/server-loopback.mjs) >"$work/server.log" 2>&1 &
pids+=($!)
go build -o "$work/conformance" ./internal/cache/conformance
"$work/conformance" --listen 127.0.0.1:$cache_port --origin http://127.0.0.1:$origin_port "$@" >"$work/cache.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do
  curl -fsS -o /dev/null http://127.0.0.1:$cache_port/ 2>/dev/null && break
  sleep 0.2
done
(cd "$suite" && npm_package_config_id= npm_config_base=http://127.0.0.1:$cache_port \
  timeout 900 node --no-warnings cli.mjs) >"$out"
node internal/cache/conformance/score.mjs "$suite" "$out"

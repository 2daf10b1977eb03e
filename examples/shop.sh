#!/bin/sh
# Start the demo shop's five services, three instances each, on the ports
# examples/lbsys.yaml balances (examples/examples_test.go checks that they
# agree), checkout calling the others through the proxy. Then, in other
# terminals:
#
#   lbsys proxy --config examples/lbsys.yaml
#   lbsys load --rate 500 --duration 60s
#
# Ctrl-C stops every instance. LBSYS names the binary (default: lbsys on
# the PATH, e.g. after `go install ./cmd/lbsys`); PROXY the proxy's URL for
# checkout (default http://127.0.0.1:8080). Extra arguments go to every
# `lbsys shop` (e.g. --latency 5ms). Everything listens on 127.0.0.1 only.
set -eu

LBSYS=${LBSYS:-lbsys}
PROXY=${PROXY:-http://127.0.0.1:8080}
pids=""

stop() {
	trap - INT TERM EXIT
	# shellcheck disable=SC2086 # word splitting of the pid list is wanted
	[ -n "$pids" ] && kill $pids 2>/dev/null
	wait
}
trap stop INT TERM EXIT

# start SERVICE BASE_PORT [ARGS...]: three instances on BASE_PORT..BASE_PORT+2.
start() {
	service=$1 port=$2
	shift 2
	"$LBSYS" shop --service "$service" --instances 3 --base-port "$port" "$@" &
	pids="$pids $!"
}

start catalog 9001 "$@"
start inventory 9041 "$@"
start cart 9011 "$@"
start checkout 9021 --upstream "$PROXY" "$@"
start payment 9031 "$@"
echo "shop: catalog :9001-9003, inventory :9041-9043, cart :9011-9013, checkout :9021-9023 (upstream $PROXY), payment :9031-9033; Ctrl-C stops" >&2
wait

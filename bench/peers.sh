#!/usr/bin/env bash
# bench/peers.sh — lbsys's data plane against NGINX, HAProxy, Caddy and a plain
# Go httputil.ReverseProxy, and lbsys's response cache against NGINX's
# proxy_cache (cache hits vs proxied requests), measured as prescribed in
# shared/BENCHMARKS.md:
# proxy alone on core 0, wrk and the backends on core 1, wrk -t1 -c64 -d10s
# --latency after a 3 s warm-up, proxy CPU per 100k requests from /proc,
# quiet-machine guard, alternated rounds, medians and ratios vs NGINX.
#
# Loopback only. Kills only the processes it started. See --help and
# bench/README.md.
set -euo pipefail

# ----------------------------------------------------------------------------
# defaults
ALL_PEERS="nginx,haproxy,caddy,lbsys,lbsys-sticky,goproxy,nginx-cache,lbsys-cache"
PEERS="$ALL_PEERS"
ROUNDS=3
DURATION="10s"
WARMUP="3s"
CONNECTIONS=64
MAX_SECONDS=900
BACKEND_PORTS="18001,18002,18003"
PORT_NGINX=18081
PORT_HAPROXY=18082
PORT_CADDY=18083
PORT_LBSYS=18084
PORT_GOPROXY=18085
PORT_LBSYS_ADMIN=19901
PORT_LBSYS_STICKY=18086
PORT_LBSYS_STICKY_ADMIN=19902
PORT_NGINX_CACHE=18087
PORT_LBSYS_CACHE=18088
PORT_LBSYS_CACHE_ADMIN=19903
CACHE_PATH="/cached/item" # what the cache peers' wrk asks: the backend marks /cached/ cacheable
PROXY_CPU=0
LOAD_CPU=1
QUIET_PCT=10      # a quiet second: machine non-idle CPU below this % of one core
GUARD_PCT=5       # a run is noisy if other processes used more than this % of one core
MAX_REPEATS=2
READY_SECONDS=5
INSTALL=1
KEEP_TMP=0
OUT_DIR=""        # default: <repo>/bench/results
CSV=""

usage() {
	cat <<'EOF'
Usage: bench/peers.sh [options]

Measures lbsys's data plane against NGINX, HAProxy, Caddy and a plain Go
httputil.ReverseProxy ("goproxy"), all doing round-robin over the same three
Go backends (1 KiB body) on 127.0.0.1, with the method of shared/BENCHMARKS.md:
the proxy alone pinned on core 0, wrk and the backends on core 1; per run a
quiet second, a warm-up, then `wrk -t1 -cC -dD --latency`; the proxy's whole
process tree CPU (utime+stime) is read from /proc before and after.

The cache peers (nginx-cache: NGINX with proxy_cache; lbsys-cache: lbsys with
its response cache on the route) are the same proxies with a cacheable route
(the backend sends Cache-Control: public, max-age=3600 under /cached/); wrk
asks one URL there, so after the warm-up every measured request is a cache
hit. Their CPU per request against their plain peer's (nginx, lbsys) is the
cost of a hit relative to a proxied request.

Prints a Markdown table of medians over rounds with ratios vs NGINX, and writes
every run (including discarded ones) to bench/results/peers-<date>.csv.

Options:
  --peers LIST          comma-separated peers to run, in this order in odd
                        rounds (reversed in even rounds).
                        Default: nginx,haproxy,caddy,lbsys,lbsys-sticky,goproxy,
                        nginx-cache,lbsys-cache
                        (lbsys-sticky: lbsys plus cookie affinity, slow
                        start and the JSON-lines telemetry sink;
                        nginx-cache, lbsys-cache: cache hits, see above)
  --rounds N            rounds; each round runs every peer once. Default 3.
  --duration D          measured wrk run length (Ns, Nm or N seconds). Default 10s.
  --warmup D            wrk warm-up before each measured run. Default 3s.
  --connections N       wrk connections (-c). Default 64. wrk uses 1 thread.
  --max-seconds N       hard bound on the whole script's wall time; past it
                        the script stops and exits 124. Default 900.
  --backend-ports LIST  ports of the three (or more) backends. Default
                        18001,18002,18003.
  --port-nginx P        Default 18081.      --port-haproxy P   Default 18082.
  --port-caddy P        Default 18083.      --port-lbsys P     Default 18084.
  --port-goproxy P      Default 18085.      --port-lbsys-admin P  Default 19901.
  --port-lbsys-sticky P Default 18086.      --port-lbsys-sticky-admin P  Default 19902.
  --port-nginx-cache P  Default 18087.      --port-lbsys-cache P  Default 18088.
  --port-lbsys-cache-admin P  Default 19903.
  --proxy-cpu N         core the proxy is pinned on. Default 0.
  --load-cpu N          core wrk and the backends are pinned on. Default 1.
  --quiet-pct N         before each run, wait (up to 10 tries of 1 s) for a
                        second where the machine's non-idle CPU is below N %
                        of one core. Default 10.
  --guard-pct N         after each run, CPU used by processes other than the
                        proxy, wrk and the backends above N % of one core
                        discards the run. Default 5.
  --max-repeats N       repeats of a discarded run; after them the last run
                        is kept and marked '*'. Default 2.
  --out-dir DIR         where the CSV goes. Default bench/results.
  --no-install          never run apt-get; peers whose binary is missing are
                        skipped.
  --keep-tmp            keep the temporary directory (configs, logs, binaries).
  -h, --help            this help.

Exit status: 0 when every requested peer was measured; 3 when some peer could
not be built, started or measured (the table still shows the others); 124
when --max-seconds was exceeded; 1 on other errors.

The script installs nginx, haproxy, caddy and wrk with apt-get when missing
(root needed for that; Debian's service start on install is prevented or
undone), builds lbsys (./cmd/lbsys), bench/backend and bench/goproxy with the
go tool, and must be run from inside the repository.
EOF
}

die() { echo "peers.sh: error: $*" >&2; exit 1; }
log() { echo "peers.sh: $*" >&2; }

# ----------------------------------------------------------------------------
# options
while [ $# -gt 0 ]; do
	case "$1" in
	-h | --help) usage; exit 0 ;;
	--peers) PEERS="${2:?}"; shift ;;
	--rounds) ROUNDS="${2:?}"; shift ;;
	--duration) DURATION="${2:?}"; shift ;;
	--warmup) WARMUP="${2:?}"; shift ;;
	--connections) CONNECTIONS="${2:?}"; shift ;;
	--max-seconds) MAX_SECONDS="${2:?}"; shift ;;
	--backend-ports) BACKEND_PORTS="${2:?}"; shift ;;
	--port-nginx) PORT_NGINX="${2:?}"; shift ;;
	--port-haproxy) PORT_HAPROXY="${2:?}"; shift ;;
	--port-caddy) PORT_CADDY="${2:?}"; shift ;;
	--port-lbsys) PORT_LBSYS="${2:?}"; shift ;;
	--port-goproxy) PORT_GOPROXY="${2:?}"; shift ;;
	--port-lbsys-admin) PORT_LBSYS_ADMIN="${2:?}"; shift ;;
	--port-lbsys-sticky) PORT_LBSYS_STICKY="${2:?}"; shift ;;
	--port-lbsys-sticky-admin) PORT_LBSYS_STICKY_ADMIN="${2:?}"; shift ;;
	--port-nginx-cache) PORT_NGINX_CACHE="${2:?}"; shift ;;
	--port-lbsys-cache) PORT_LBSYS_CACHE="${2:?}"; shift ;;
	--port-lbsys-cache-admin) PORT_LBSYS_CACHE_ADMIN="${2:?}"; shift ;;
	--proxy-cpu) PROXY_CPU="${2:?}"; shift ;;
	--load-cpu) LOAD_CPU="${2:?}"; shift ;;
	--quiet-pct) QUIET_PCT="${2:?}"; shift ;;
	--guard-pct) GUARD_PCT="${2:?}"; shift ;;
	--max-repeats) MAX_REPEATS="${2:?}"; shift ;;
	--out-dir) OUT_DIR="${2:?}"; shift ;;
	--no-install) INSTALL=0 ;;
	--keep-tmp) KEEP_TMP=1 ;;
	*) echo "peers.sh: unknown option: $1 (see --help)" >&2; exit 1 ;;
	esac
	shift
done

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }
# to_seconds 10s|2m|10 -> integer seconds
to_seconds() {
	case "$1" in
	*[0-9]s) echo "${1%s}" ;;
	*[0-9]m) echo $((${1%m} * 60)) ;;
	*) echo "$1" ;;
	esac
}
DUR_S=$(to_seconds "$DURATION")
WARM_S=$(to_seconds "$WARMUP")
for v in ROUNDS CONNECTIONS MAX_SECONDS DUR_S WARM_S PROXY_CPU LOAD_CPU QUIET_PCT GUARD_PCT MAX_REPEATS \
	PORT_NGINX PORT_HAPROXY PORT_CADDY PORT_LBSYS PORT_GOPROXY PORT_LBSYS_ADMIN PORT_LBSYS_STICKY PORT_LBSYS_STICKY_ADMIN \
	PORT_NGINX_CACHE PORT_LBSYS_CACHE PORT_LBSYS_CACHE_ADMIN; do
	is_uint "${!v}" || die "$v must be a non-negative integer (got '${!v}')"
done
[ "$ROUNDS" -ge 1 ] || die "--rounds must be >= 1"
[ "$DUR_S" -ge 1 ] || die "--duration must be >= 1s"
[ "$CONNECTIONS" -ge 1 ] || die "--connections must be >= 1"
IFS=, read -ra PEER_LIST <<<"$PEERS"
[ "${#PEER_LIST[@]}" -ge 1 ] || die "--peers is empty"
for p in "${PEER_LIST[@]}"; do
	case ",$ALL_PEERS," in *",$p,"*) ;; *) die "unknown peer '$p' (known: $ALL_PEERS)" ;; esac
done
IFS=, read -ra BPORTS <<<"$BACKEND_PORTS"
[ "${#BPORTS[@]}" -ge 1 ] || die "--backend-ports is empty"
for p in "${BPORTS[@]}"; do is_uint "$p" || die "bad backend port '$p'"; done

# ----------------------------------------------------------------------------
# time bound: every blocking command runs under `timeout` with what is left of
# the budget, and check_deadline runs between steps.
DEADLINE=$((SECONDS + MAX_SECONDS))
budget() { local b=$((DEADLINE - SECONDS)); [ "$b" -gt 0 ] || b=1; echo "$b"; }
check_deadline() {
	if [ "$SECONDS" -ge "$DEADLINE" ]; then
		echo "peers.sh: error: exceeded --max-seconds=$MAX_SECONDS; stopping" >&2
		exit 124
	fi
}
bounded() { # bounded MAXSEC cmd... : runs cmd with min(MAXSEC, budget) seconds
	local t b
	t=$1; shift
	b=$(budget)
	[ "$t" -le "$b" ] || t=$b
	timeout --kill-after=5 "$t" "$@"
}

# ----------------------------------------------------------------------------
# process bookkeeping and cleanup: only what we started
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
TMP=$(mktemp -d /tmp/lbsys-peers.XXXXXX)
STARTED_PIDS=()
POLICY_RC_CREATED=0

# descendants PID -> PID and all its descendants, one per line
descendants() {
	local root=$1 f s rest pid ppid
	declare -A kids=()
	for f in /proc/[0-9]*/stat; do
		{ read -r s <"$f"; } 2>/dev/null || continue
		pid=${s%% *}
		rest=${s##*) }
		ppid=${rest#* }; ppid=${ppid%% *}
		kids[$ppid]+="$pid "
	done
	local queue=("$root") out=() cur
	while [ "${#queue[@]}" -gt 0 ]; do
		cur=${queue[0]}; queue=("${queue[@]:1}")
		[ -e "/proc/$cur" ] || continue
		out+=("$cur")
		for k in ${kids[$cur]:-}; do queue+=("$k"); done
	done
	printf '%s\n' "${out[@]}"
}

stop_tree() { # stop_tree PID: TERM the tree, KILL what is left after 5 s
	local pid=$1 p i
	[ -n "$pid" ] && [ -e "/proc/$pid" ] || return 0
	local tree
	mapfile -t tree < <(descendants "$pid")
	for p in "${tree[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for i in $(seq 50); do
		local alive=0
		for p in "${tree[@]}"; do [ -e "/proc/$p" ] && ! grep -q '^State:.*Z' "/proc/$p/status" 2>/dev/null && alive=1; done
		[ "$alive" = 0 ] && break
		sleep 0.1
	done
	for p in "${tree[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	wait "$pid" 2>/dev/null || true
}

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	for pid in "${STARTED_PIDS[@]}"; do stop_tree "$pid"; done
	if [ "$rc" = 124 ] && [ -n "$CSV" ] && [ "$(wc -l <"$CSV")" -gt 1 ]; then
		print_summary "INCOMPLETE: stopped by --max-seconds=$MAX_SECONDS." || true
	fi
	if [ "$POLICY_RC_CREATED" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
	if [ "$KEEP_TMP" = 1 ]; then log "temporary files kept in $TMP"; else rm -rf "$TMP"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

forget_pid() { # remove a PID from STARTED_PIDS
	local keep=() p
	for p in "${STARTED_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
	STARTED_PIDS=("${keep[@]}")
}

port_free() { # port_free PORT -> 0 when nothing listens on 127.0.0.1:PORT / *:PORT
	! ss -Htln "( sport = :$1 )" 2>/dev/null | grep -q .
}

# ----------------------------------------------------------------------------
# installing the peers
pids_of() { # pids_of NAME...: PIDs whose comm is one of NAME
	local f s c pid names=" $* "
	for f in /proc/[0-9]*/comm; do
		{ read -r c <"$f"; } 2>/dev/null || continue
		case "$names" in *" $c "*) pid=${f#/proc/}; echo "${pid%/comm}" ;; esac
	done
}

install_peers() {
	local pkgs=() p
	for p in "${PEER_LIST[@]}"; do
		case "$p" in
		nginx | haproxy | caddy) command -v "$p" >/dev/null 2>&1 || pkgs+=("$p") ;;
		nginx-cache) command -v nginx >/dev/null 2>&1 || case " ${pkgs[*]} " in *" nginx "*) ;; *) pkgs+=(nginx) ;; esac ;;
		esac
	done
	command -v wrk >/dev/null 2>&1 || pkgs+=(wrk)
	[ "${#pkgs[@]}" -gt 0 ] || return 0
	if [ "$INSTALL" = 0 ]; then
		log "missing and --no-install: ${pkgs[*]}"
		return 0
	fi
	[ "$(id -u)" = 0 ] || die "need root to apt-get install ${pkgs[*]} (or install them, or use --no-install)"
	log "installing with apt-get: ${pkgs[*]}"
	# Debian's nginx/haproxy/caddy start their system service on install;
	# policy-rc.d (exit 101) tells invoke-rc.d / deb-systemd-invoke not to.
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		POLICY_RC_CREATED=1
	fi
	local before
	before=" $(pids_of nginx haproxy caddy | tr '\n' ' ') "
	bounded 300 apt-get update -qq >"$TMP/apt-update.log" 2>&1 || { cat "$TMP/apt-update.log" >&2; die "apt-get update failed"; }
	DEBIAN_FRONTEND=noninteractive bounded 600 apt-get install -y -qq --no-install-recommends "${pkgs[@]}" \
		>"$TMP/apt-install.log" 2>&1 || { tail -30 "$TMP/apt-install.log" >&2; die "apt-get install ${pkgs[*]} failed"; }
	if [ "$POLICY_RC_CREATED" = 1 ]; then rm -f /usr/sbin/policy-rc.d; POLICY_RC_CREATED=0; fi
	# Undo any service the install started anyway (no systemd here: use
	# service(8), then kill only daemons that appeared during the install).
	for p in nginx haproxy caddy; do
		case " ${pkgs[*]} " in *" $p "*) ;; *) continue ;; esac
		if command -v systemctl >/dev/null 2>&1; then
			if [ -d /run/systemd/system ]; then
				bounded 30 systemctl disable --now "$p" >/dev/null 2>&1 || true
			else # no systemd running: disable offline (removes the wants/ symlink)
				bounded 30 systemctl disable "$p" >/dev/null 2>&1 || true
			fi
		fi
		if command -v service >/dev/null 2>&1 && [ -e "/etc/init.d/$p" ]; then
			bounded 20 service "$p" stop >/dev/null 2>&1 || true
		fi
	done
	sleep 0.5
	for p in $(pids_of nginx haproxy caddy); do
		case "$before" in *" $p "*) ;; *)
			log "stopping daemon PID $p ($(cat "/proc/$p/comm" 2>/dev/null)) started by the package install"
			kill -TERM "$p" 2>/dev/null || true ;;
		esac
	done
}

# ----------------------------------------------------------------------------
# /proc readings
CLK_TCK=$(getconf CLK_TCK)

tree_ticks() { # tree_ticks PID... -> utime+stime summed over the given PIDs
	local t=0 s rest f p
	for p in "$@"; do
		{ read -r s <"/proc/$p/stat"; } 2>/dev/null || continue
		rest=${s##*) }
		read -ra f <<<"$rest"
		# f[0] is field 3 (state); utime is field 14, stime field 15
		t=$((t + f[11] + f[12]))
	done
	echo "$t"
}

self_child_ticks() { # cutime+cstime of this shell: CPU of reaped children (wrk)
	local s rest f
	read -r s </proc/$$/stat
	rest=${s##*) }
	read -ra f <<<"$rest"
	echo $((f[13] + f[14]))
}

# shellcheck disable=SC2004  # associative arrays need $ in their subscripts
# snap_others ARRAY: ARRAY[pid] = utime+stime+cutime+cstime of every process
# that is not this script or one of its descendants (kernel threads included).
# The cutime/cstime terms catch short-lived processes reaped by their parent.
snap_others() {
	local -n _snap=$1
	local -A ours=()
	local p f s rest fl pid
	for p in $(descendants $$); do ours[$p]=1; done
	_snap=()
	for f in /proc/[0-9]*/stat; do
		{ read -r s <"$f"; } 2>/dev/null || continue
		pid=${s%% *}
		[ -z "${ours[$pid]:-}" ] || continue
		rest=${s##*) }
		read -ra fl <<<"$rest"
		_snap[$pid]=$((fl[11] + fl[12] + fl[13] + fl[14]))
	done
}
# shellcheck disable=SC2004
# diff_others BEFORE AFTER -> ticks used by other processes between the snapshots
diff_others() {
	local -n _b=$1 _a=$2
	local pid t=0
	for pid in "${!_a[@]}"; do t=$((t + _a[$pid] - ${_b[$pid]:-0})); done
	echo "$t"
}
# shellcheck disable=SC2034  # used through namerefs
declare -A OTH0=() OTH1=()

cpu_stat() { # -> "nonidle steal" in ticks, machine-wide
	local user nice system irq softirq steal
	read -r _ user nice system _ _ irq softirq steal _ </proc/stat
	echo "$((user + nice + system + irq + softirq)) $steal"
}

wait_quiet() { # -> prints yes|no
	local i a b limit
	limit=$((CLK_TCK * QUIET_PCT / 100))
	for i in $(seq 10); do
		[ "$SECONDS" -lt "$DEADLINE" ] || break
		read -r a _ < <(cpu_stat)
		sleep 1
		read -r b _ < <(cpu_stat)
		if [ $((b - a)) -le "$limit" ]; then echo yes; return; fi
	done
	echo no
}

now() { date +%s.%N; }

# ----------------------------------------------------------------------------
# peers: configs and start commands
peer_port() {
	case "$1" in
	nginx) echo "$PORT_NGINX" ;; haproxy) echo "$PORT_HAPROXY" ;; caddy) echo "$PORT_CADDY" ;;
	lbsys) echo "$PORT_LBSYS" ;; goproxy) echo "$PORT_GOPROXY" ;; lbsys-sticky) echo "$PORT_LBSYS_STICKY" ;;
	nginx-cache) echo "$PORT_NGINX_CACHE" ;; lbsys-cache) echo "$PORT_LBSYS_CACHE" ;;
	esac
}

peer_path() { # the path wrk asks of a peer
	case "$1" in nginx-cache | lbsys-cache) echo "$CACHE_PATH" ;; *) echo / ;; esac
}

write_configs() {
	local p lines
	mkdir -p "$TMP/nginx" "$TMP/haproxy" "$TMP/caddy" "$TMP/lbsys"

	lines=""
	for p in "${BPORTS[@]}"; do lines+="        server 127.0.0.1:$p;"$'\n'; done
	cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
master_process on;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events {
    worker_connections 4096;
}
http {
    access_log off;
    client_body_temp_path $TMP/nginx/client_body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    upstream backends {
$lines        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$PORT_NGINX;
        keepalive_requests 1000000;
        location / {
            proxy_pass http://backends;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF

	# nginx-cache: the same NGINX with proxy_cache on /cached/ (keys in
	# shared memory, bodies in files as NGINX always stores them; the page
	# cache serves the hits) and X-Cache from $upstream_cache_status.
	mkdir -p "$TMP/nginx-cache"
	awk -v port="$PORT_NGINX" -v cport="$PORT_NGINX_CACHE" -v dir="$TMP/nginx-cache" '
		{ gsub("/nginx/", "/nginx-cache/"); sub("listen 127.0.0.1:" port ";", "listen 127.0.0.1:" cport ";") }
		/^    upstream backends \{/ {
			print "    proxy_cache_path " dir "/cache levels=1:2 keys_zone=bench:10m max_size=64m inactive=60m use_temp_path=off;"
		}
		/^        location \/ \{/ {
			print "        location /cached/ {"
			print "            proxy_pass http://backends;"
			print "            proxy_http_version 1.1;"
			print "            proxy_set_header Connection \"\";"
			print "            proxy_cache bench;"
			print "            add_header X-Cache $upstream_cache_status;"
			print "        }"
		}
		{ print }' "$TMP/nginx/nginx.conf" >"$TMP/nginx-cache/nginx.conf"
	# The worker (NGINX's compiled-in user, nobody unless --user= says
	# otherwise, when started as root) must reach the cache directory in
	# this private temporary directory.
	mkdir -p "$TMP/nginx-cache/cache"
	if [ "$(id -u)" = 0 ]; then
		local wuser
		wuser=$(nginx -V 2>&1 | tr ' ' '\n' | sed -n 's/^--user=//p')
		chmod o+x "$TMP" "$TMP/nginx-cache"
		chown "${wuser:-nobody}" "$TMP/nginx-cache/cache"
	fi

	lines=""
	local i=1
	for p in "${BPORTS[@]}"; do lines+="    server s$i 127.0.0.1:$p"$'\n'; i=$((i + 1)); done
	cat >"$TMP/haproxy/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    option http-keep-alive
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
    timeout http-keep-alive 60s
frontend fe
    bind 127.0.0.1:$PORT_HAPROXY
    default_backend be
backend be
    balance roundrobin
    http-reuse always
$lines
EOF

	lines=""
	for p in "${BPORTS[@]}"; do lines+=" 127.0.0.1:$p"; done
	cat >"$TMP/caddy/Caddyfile" <<EOF
{
	admin off
	auto_https off
	storage file_system $TMP/caddy/data
	servers {
		protocols h1
	}
}

http://:$PORT_CADDY {
	bind 127.0.0.1
	reverse_proxy$lines {
		lb_policy round_robin
		transport http {
			keepalive 60s
			keepalive_idle_conns 256
			keepalive_idle_conns_per_host 64
		}
	}
}
EOF

	lines=""
	for p in "${BPORTS[@]}"; do lines+="      - {address: 127.0.0.1:$p}"$'\n'; done
	cat >"$TMP/lbsys/lbsys.yaml" <<EOF
# all features on: active health checks, outlier detection (default on),
# retries (default on), adaptive admission (its floor above wrk's 64
# connections: a closed-loop run always saturates a core, and a limiter
# that sheds part of it would make lbsys's CPU per request cheaper, not
# comparable), telemetry (default on), admin listener with /metrics.
admin:
  listen: 127.0.0.1:$PORT_LBSYS_ADMIN
listeners:
  - listen: 127.0.0.1:$PORT_LBSYS
    routes:
      - service: app
services:
  - name: app
    policy: round_robin
    endpoints:
$lines    admission: {min_limit: 100, initial_limit: 100}
    health:
      active:
        path: /healthz
        interval: 5s
EOF
	# lbsys-sticky: the same plus HMAC-signed cookie affinity (wrk sends
	# no cookie, so every request is picked and answered with a signed
	# Set-Cookie: the worst case of affinity), slow start and the
	# JSON-lines telemetry sink.
	head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$TMP/lbsys/affinity.key"
	sed -e "s/127.0.0.1:$PORT_LBSYS_ADMIN/127.0.0.1:$PORT_LBSYS_STICKY_ADMIN/" \
		-e "s/127.0.0.1:$PORT_LBSYS\$/127.0.0.1:$PORT_LBSYS_STICKY/" \
		"$TMP/lbsys/lbsys.yaml" >"$TMP/lbsys/sticky.yaml"
	cat >>"$TMP/lbsys/sticky.yaml" <<EOF
      slow_start: {window: 30s}
    affinity:
      type: cookie
      cookie: {secret_file: $TMP/lbsys/affinity.key}
telemetry:
  jsonl_path: $TMP/lbsys/telemetry.jsonl
EOF
	# lbsys-cache: lbsys (all features on, as above) with its response
	# cache on a /cached route in front of the same service.
	awk -v admin="127.0.0.1:$PORT_LBSYS_ADMIN" -v cadmin="127.0.0.1:$PORT_LBSYS_CACHE_ADMIN" \
		-v listen="127.0.0.1:$PORT_LBSYS" -v clisten="127.0.0.1:$PORT_LBSYS_CACHE" '
		$0 == "  listen: " admin { $0 = "  listen: " cadmin }
		$0 == "  - listen: " listen { $0 = "  - listen: " clisten }
		$0 == "      - service: app" { print "      - {name: cached, match: {path_prefix: /cached}, service: app, cache: {enabled: true}}" }
		{ print }' "$TMP/lbsys/lbsys.yaml" >"$TMP/lbsys/cache.yaml"
}

# start_peer NAME -> sets PEER_PID (the PID whose process tree is the proxy)
start_peer() {
	local name=$1 logf="$TMP/$1.log"
	local cmd=()
	case "$name" in
	nginx) cmd=(nginx -p "$TMP/nginx/" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log") ;;
	nginx-cache) cmd=(nginx -p "$TMP/nginx-cache/" -c "$TMP/nginx-cache/nginx.conf" -e "$TMP/nginx-cache/error.log") ;;
	haproxy) cmd=(haproxy -db -f "$TMP/haproxy/haproxy.cfg") ;;
	caddy) cmd=(env HOME="$TMP/caddy" XDG_DATA_HOME="$TMP/caddy/data" XDG_CONFIG_HOME="$TMP/caddy/config"
		caddy run --config "$TMP/caddy/Caddyfile" --adapter caddyfile) ;;
	lbsys) cmd=("$TMP/bin/lbsys" proxy --config "$TMP/lbsys/lbsys.yaml") ;;
	lbsys-sticky) cmd=("$TMP/bin/lbsys" proxy --config "$TMP/lbsys/sticky.yaml") ;;
	lbsys-cache) cmd=("$TMP/bin/lbsys" proxy --config "$TMP/lbsys/cache.yaml") ;;
	goproxy) local b="" p
		for p in "${BPORTS[@]}"; do b+="127.0.0.1:$p,"; done
		cmd=("$TMP/bin/goproxy" -listen "127.0.0.1:$PORT_GOPROXY" -backends "${b%,}" -max-idle-per-host 64) ;;
	esac
	# taskset execs the proxy (env execs too), so $! is the proxy itself.
	taskset -c "$PROXY_CPU" "${cmd[@]}" >>"$logf" 2>&1 </dev/null &
	PEER_PID=$!
	STARTED_PIDS+=("$PEER_PID")
}

wait_ready() { # wait_ready PORT PID -> 0 when GET / answers 200 within READY_SECONDS
	local port=$1 pid=$2 end code
	end=$(($(date +%s) + READY_SECONDS))
	while [ "$(date +%s)" -lt "$end" ]; do
		[ -e "/proc/$pid" ] || return 1
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$port/" 2>/dev/null || true)
		[ "$code" = 200 ] && return 0
		sleep 0.1
	done
	return 1
}

peer_version() {
	case "$1" in
	nginx | nginx-cache) nginx -v 2>&1 | sed 's/.*version: //' ;;
	haproxy) haproxy -v 2>&1 | head -1 | awk '{print "HAProxy " $3}' ;;
	caddy) caddy version 2>/dev/null | awk '{print "Caddy " $1}' ;;
	lbsys | lbsys-sticky | lbsys-cache) local rev
		rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null) || rev="no commit"
		[ -z "$(git -C "$REPO" status --porcelain -- cmd internal go.mod 2>/dev/null)" ] || rev+=", modified"
		echo "lbsys ($rev)" ;;
	goproxy) echo "httputil.ReverseProxy ($(go env GOVERSION))" ;;
	esac
}

# ----------------------------------------------------------------------------
# wrk output parsing
to_ms() { # 1.23ms | 456.00us | 1.02s | 2.00m -> milliseconds
	awk -v v="$1" 'BEGIN{
		n=v; sub(/[a-z]+$/,"",n); u=v; sub(/^[0-9.]+/,"",u);
		if(u=="us") n/=1000; else if(u=="s") n*=1000; else if(u=="m") n*=60000; else if(u=="h") n*=3600000;
		printf "%.3f", n }'
}
parse_wrk() { # parse_wrk FILE -> "reqs rps p50ms p99ms errors non2xx"
	local wrkout=$1 reqs rps p50 p99 errs non2xx
	reqs=$(awk '/requests in/ {print $1; exit}' "$wrkout")
	rps=$(awk '/^Requests\/sec:/ {print $2; exit}' "$wrkout")
	p50=$(awk '$1=="50%" {print $2; exit}' "$wrkout")
	p99=$(awk '$1=="99%" {print $2; exit}' "$wrkout")
	errs=$(awk '/Socket errors:/ {gsub(",",""); print $4+$6+$8+$10; exit}' "$wrkout")
	non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF; exit}' "$wrkout")
	[ -n "$reqs" ] && [ -n "$rps" ] && [ -n "$p50" ] && [ -n "$p99" ] || return 1
	echo "$reqs $rps $(to_ms "$p50") $(to_ms "$p99") ${errs:-0} ${non2xx:-0}"
}

# ----------------------------------------------------------------------------
# one measured run of one peer (proxy started fresh, stopped afterwards)
# run_peer NAME ROUND POS -> appends CSV lines; returns 1 when the peer failed
run_peer() {
	local name=$1 round=$2 pos=$3 port attempt status
	port=$(peer_port "$name")
	local url
	url="http://127.0.0.1:$port$(peer_path "$name")"

	if ! port_free "$port"; then
		log "$name: port $port is already in use by another process; skipping $name"
		return 1
	fi
	start_peer "$name"
	local pid=$PEER_PID
	if ! wait_ready "$port" "$pid"; then
		log "$name: did not answer 200 on $url within ${READY_SECONDS}s of start; skipping $name. Last log lines:"
		{ tail -15 "$TMP/$name.log"; [ "$name" = nginx ] && tail -5 "$TMP/nginx/error.log"; } 2>/dev/null | sed 's/^/    /' >&2 || true
		[ -s "$TMP/$name.log" ] || echo "    (no output; the process is $([ -e "/proc/$pid" ] && echo "still running" || echo "gone"))" >&2
		stop_tree "$pid"; forget_pid "$pid"
		return 1
	fi

	local ok=0
	for attempt in $(seq 0 "$MAX_REPEATS"); do
		check_deadline
		local quiet; quiet=$(wait_quiet)
		check_deadline
		# warm-up (output discarded)
		bounded $((WARM_S + 15)) taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"${WARM_S}s" "$url" >/dev/null 2>&1 || true
		check_deadline
		case "$name" in *-cache) # the measured requests must be hits
			local xc
			xc=$(curl -s -o /dev/null -D - --max-time 2 "$url" 2>/dev/null | awk -F': *' 'tolower($1)=="x-cache" {gsub("\r",""); print $2}')
			[ "$xc" = HIT ] || log "$name: after the warm-up $url answers X-Cache '${xc:-none}', not HIT: the run measures no cache hits" ;;
		esac

		local tree; mapfile -t tree < <(descendants "$pid")
		local p0 b0 w0 m0 s0 t0 p1 b1 w1 m1 s1 t1
		t0=$(now); read -r m0 s0 < <(cpu_stat); snap_others OTH0
		p0=$(tree_ticks "${tree[@]}"); b0=$(tree_ticks "${BACKEND_TREE[@]}"); w0=$(self_child_ticks)
		local wrc=0
		bounded $((DUR_S + 15)) taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DUR_S}s" --latency "$url" \
			>"$TMP/wrk.out" 2>&1 || wrc=$?
		p1=$(tree_ticks "${tree[@]}"); b1=$(tree_ticks "${BACKEND_TREE[@]}"); w1=$(self_child_ticks)
		snap_others OTH1; read -r m1 s1 < <(cpu_stat); t1=$(now)
		check_deadline

		local parsed
		if [ "$wrc" != 0 ] || ! parsed=$(parse_wrk "$TMP/wrk.out"); then
			log "$name: wrk failed (exit $wrc); output:"; sed 's/^/    /' "$TMP/wrk.out" >&2
			break
		fi
		if [ ! -e "/proc/$pid" ]; then
			log "$name: the proxy exited during the run"; break
		fi
		local reqs rps p50 p99 errs non2xx
		read -r reqs rps p50 p99 errs non2xx <<<"$parsed"
		local wall proxy_t other_t other_tick other_proc limit
		wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')
		proxy_t=$((p1 - p0))
		# two estimates of what other processes used: the machine's tick-sampled
		# total minus ours (catches everything, but its sampling error against
		# the precise per-task times is several % of a core), and the precise
		# per-process sum; the guard uses the larger.
		other_tick=$(((m1 - m0) - proxy_t - (b1 - b0) - (w1 - w0)))
		other_proc=$(diff_others OTH0 OTH1)
		other_t=$other_tick
		[ "$other_proc" -le "$other_t" ] || other_t=$other_proc
		limit=$(awk -v w="$wall" -v hz="$CLK_TCK" -v g="$GUARD_PCT" 'BEGIN{printf "%d", w*hz*g/100}')
		if [ "$other_t" -le "$limit" ]; then status=ok
		elif [ "$attempt" -lt "$MAX_REPEATS" ]; then status=discarded
		else status=noisy; fi
		local cpu_s per100k
		cpu_s=$(awk -v t="$proxy_t" -v hz="$CLK_TCK" 'BEGIN{printf "%.3f", t/hz}')
		per100k=$(awk -v c="$cpu_s" -v r="$reqs" 'BEGIN{ if (r>0) printf "%.4f", c/r*100000; else print "nan" }')
		printf '%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n' \
			"$round" "$pos" "$name" "$attempt" "$status" "$quiet" "$wall" "$reqs" "$rps" "$p50" "$p99" \
			"$cpu_s" "$per100k" \
			"$(awk -v t=$((w1 - w0)) -v hz="$CLK_TCK" 'BEGIN{printf "%.3f", t/hz}')" \
			"$(awk -v t=$((b1 - b0)) -v hz="$CLK_TCK" 'BEGIN{printf "%.3f", t/hz}')" \
			"$(awk -v t="$other_t" -v hz="$CLK_TCK" 'BEGIN{printf "%.3f", t/hz}')" \
			"$(awk -v t="$other_tick" -v hz="$CLK_TCK" 'BEGIN{printf "%.3f", t/hz}')" \
			"$(awk -v t="$other_proc" -v hz="$CLK_TCK" 'BEGIN{printf "%.3f", t/hz}')" \
			"$(awk -v t=$((s1 - s0)) -v hz="$CLK_TCK" 'BEGIN{printf "%.3f", t/hz}')" \
			"$errs" "$non2xx" "$CONNECTIONS" >>"$CSV"
		log "$(printf 'round %d %-8s %-9s req/s %9.0f  p50 %7.3f ms  p99 %7.3f ms  cpu/100k %6.3f s  others %s ticks (machine %s, per-process %s; limit %s)  quiet=%s%s' \
			"$round" "$name" "$status" "$rps" "$p50" "$p99" "$per100k" "$other_t" "$other_tick" "$other_proc" "$limit" "$quiet" \
			"$([ "$errs$non2xx" = 00 ] || echo "  ERRORS socket=$errs non2xx=$non2xx")")"
		if [ "$status" != discarded ]; then ok=1; break; fi
	done

	stop_tree "$pid"; forget_pid "$pid"
	[ "$ok" = 1 ]
}

# ----------------------------------------------------------------------------
# summary: medians over kept runs (ok or noisy) per peer, ratios vs nginx
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b>0) printf "%.2f", a/b; else print "n/a" }'; }
median() { sort -g | awk '{a[NR]=$1} END{ if (NR==0) {print "nan"; exit} if (NR%2) print a[(NR+1)/2]; else printf "%.4f\n", (a[NR/2]+a[NR/2+1])/2 }'; }
col() { # col PEER FIELD# -> values of kept runs
	awk -F, -v p="$1" -v c="$2" 'NR>1 && $3==p && ($5=="ok" || $5=="noisy") {print $c}' "$CSV"
}
# paired PEER: CPU per request against NGINX's in the same round, over the
# rounds where both have a kept run: "median (min–max, N rounds)". The
# rounds alternate the peers' order back to back, so a host that is faster
# or slower for a while moves both sides of a round's ratio alike, while
# the ratio of the medians can pair a fast round of one with a slow one
# of the other.
paired() {
	awk -F, -v p="$1" 'NR>1 && ($5=="ok" || $5=="noisy") { if ($3==p) a[$1]=$13; if ($3=="nginx") b[$1]=$13 }
		END { for (r in a) if ((r in b) && b[r] > 0) print a[r] / b[r] }' "$CSV" | sort -g |
		awk '{v[NR]=$1} END { if (NR == 0) exit; m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2
			printf "%.2f (%.2f–%.2f, %d rounds)", m, v[1], v[NR], NR }'
}
declare -A NRUNS=() SKIP=()
print_summary() { # print_summary NOTE: table of medians to stdout and to <csv>.md
	local p mark cr rr
	declare -A MRPS MP50 MP99 MCPU NOISY ERRS
	for p in "${PEER_LIST[@]}"; do
		NRUNS[$p]=$(col "$p" 9 | wc -l)
		[ "${NRUNS[$p]}" -gt 0 ] || continue
		MRPS[$p]=$(col "$p" 9 | median)
		MP50[$p]=$(col "$p" 10 | median)
		MP99[$p]=$(col "$p" 11 | median)
		MCPU[$p]=$(col "$p" 13 | median)
		NOISY[$p]=$(awk -F, -v p="$p" 'NR>1 && $3==p && $5=="noisy"' "$CSV" | wc -l)
		ERRS[$p]=$(awk -F, -v p="$p" 'NR>1 && $3==p && ($5=="ok"||$5=="noisy") {s+=$20+$21} END{print s+0}' "$CSV")
	done

	{
		echo
		echo "### Proxy peers, $(date -u +%Y-%m-%d) — ${ROUNDS} round(s) × ${DUR_S}s, wrk -t1 -c${CONNECTIONS}, proxy on core ${PROXY_CPU}, wrk+backends on core ${LOAD_CPU}"
		echo
		echo "| peer | version | runs | req/s | p50 ms | p99 ms | CPU s per 100k req | CPU × NGINX | req/s × NGINX |"
		echo "|---|---|---|---|---|---|---|---|---|"
		for p in "${PEER_LIST[@]}"; do
			if [ "${NRUNS[$p]:-0}" = 0 ]; then
				echo "| $p | $(peer_version "$p" 2>/dev/null || true) | 0 | $([ -n "${SKIP[$p]:-}" ] && echo failed || echo "not run") | | | | | |"
				continue
			fi
			mark=""
			[ "${NOISY[$p]}" = 0 ] || mark="*"
			[ "${ERRS[$p]}" = 0 ] || mark+="!"
			cr="n/a"; rr="n/a"
			if [ -n "${MCPU[nginx]:-}" ]; then
				cr=$(awk -v a="${MCPU[$p]}" -v b="${MCPU[nginx]}" 'BEGIN{ if (b>0) printf "%.2f", a/b; else print "n/a" }')
				rr=$(awk -v a="${MRPS[$p]}" -v b="${MRPS[nginx]}" 'BEGIN{ if (b>0) printf "%.2f", a/b; else print "n/a" }')
			fi
			printf '| %s%s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$p" "$mark" "$(peer_version "$p" 2>/dev/null || true)" \
				"${NRUNS[$p]}" "$(awk -v v="${MRPS[$p]}" 'BEGIN{printf "%.0f", v}')" \
				"$(awk -v v="${MP50[$p]}" 'BEGIN{printf "%.2f", v}')" "$(awk -v v="${MP99[$p]}" 'BEGIN{printf "%.2f", v}')" \
				"$(awk -v v="${MCPU[$p]}" 'BEGIN{printf "%.2f", v}')" "$cr" "$rr"
		done
		echo
		echo "Medians over rounds. \`*\`: at least one kept run had other processes above ${GUARD_PCT}% of a core after ${MAX_REPEATS} repeats; \`!\`: wrk saw socket errors or non-2xx responses. Raw runs: \`${CSV#"$REPO"/}\`. $1"
		local pr=() v
		if [ -n "${MCPU[nginx]:-}" ]; then
			for p in "${PEER_LIST[@]}"; do
				[ "$p" != nginx ] && [ "${NRUNS[$p]:-0}" != 0 ] || continue
				v=$(paired "$p")
				[ -z "$v" ] || pr+=("$p $v")
			done
		fi
		if [ "${#pr[@]}" -gt 0 ]; then
			echo
			printf 'CPU × NGINX paired by round (median of the rounds'"'"' ratios, range): %s.\n' "$(printf '%s; ' "${pr[@]}" | sed 's/; $//')"
		fi
		# Cache hits against proxied requests (issue #15): CPU per request of
		# a hit ÷ of a proxied request, per proxy; lbsys's goal is ≤ 0.5.
		local cl=()
		if [ -n "${MCPU[lbsys-cache]:-}" ] && [ -n "${MCPU[lbsys]:-}" ]; then
			cl+=("lbsys hit ÷ lbsys proxied $(ratio "${MCPU[lbsys-cache]}" "${MCPU[lbsys]}") (goal ≤ 0.5)")
		fi
		if [ -n "${MCPU[nginx-cache]:-}" ] && [ -n "${MCPU[nginx]:-}" ]; then
			cl+=("NGINX hit ÷ NGINX proxied $(ratio "${MCPU[nginx-cache]}" "${MCPU[nginx]}")")
		fi
		if [ -n "${MCPU[lbsys-cache]:-}" ] && [ -n "${MCPU[nginx-cache]:-}" ]; then
			cl+=("lbsys hit ÷ NGINX hit $(ratio "${MCPU[lbsys-cache]}" "${MCPU[nginx-cache]}")")
		fi
		if [ "${#cl[@]}" -gt 0 ]; then
			echo
			printf 'Cache hits, CPU per request (medians): %s.\n' "$(printf '%s; ' "${cl[@]}" | sed 's/; $//')"
		fi
	} | tee "${CSV%.csv}.md"
}

# ----------------------------------------------------------------------------
# main
log "repo $REPO, tmp $TMP, peers ${PEER_LIST[*]}, rounds $ROUNDS, ${DUR_S}s runs, $CONNECTIONS connections, max ${MAX_SECONDS}s"
command -v taskset >/dev/null || die "taskset (util-linux) is required"
command -v curl >/dev/null || die "curl is required"
command -v go >/dev/null || die "the go tool is required"
if [ "$(nproc --all)" -le "$PROXY_CPU" ] || [ "$(nproc --all)" -le "$LOAD_CPU" ]; then die "need CPUs $PROXY_CPU and $LOAD_CPU"; fi

install_peers
command -v wrk >/dev/null 2>&1 || die "wrk is not installed"
check_deadline

mkdir -p "$TMP/bin"
log "building backend and goproxy"
bounded 300 go build -o "$TMP/bin/backend" ./bench/backend || die "go build ./bench/backend failed"
for p in "${PEER_LIST[@]}"; do
	case "$p" in
	goproxy) bounded 300 go build -o "$TMP/bin/goproxy" ./bench/goproxy >"$TMP/build-goproxy.log" 2>&1 ||
		{ log "go build ./bench/goproxy failed; skipping goproxy"; cat "$TMP/build-goproxy.log" >&2; SKIP[$p]=1; } ;;
	lbsys | lbsys-sticky | lbsys-cache) [ -x "$TMP/bin/lbsys" ] || { log "building lbsys"
		bounded 300 go build -o "$TMP/bin/lbsys" ./cmd/lbsys >"$TMP/build-lbsys.log" 2>&1; } ||
		{ log "go build ./cmd/lbsys failed; skipping $p:"; sed 's/^/    /' "$TMP/build-lbsys.log" | head -20 >&2; SKIP[$p]=1; } ;;
	*) command -v "${p%-cache}" >/dev/null 2>&1 || { log "${p%-cache} is not installed; skipping $p"; SKIP[$p]=1; } ;;
	esac
done
check_deadline

write_configs

for p in "${BPORTS[@]}"; do port_free "$p" || die "backend port $p is already in use (choose others with --backend-ports)"; done
BP=""
for p in "${BPORTS[@]}"; do BP+="$p,"; done
taskset -c "$LOAD_CPU" "$TMP/bin/backend" -ports "${BP%,}" -cacheable /cached/ >"$TMP/backend.log" 2>&1 </dev/null &
BACKEND_PID=$!
STARTED_PIDS+=("$BACKEND_PID")
for p in "${BPORTS[@]}"; do
	ready=0
	for i in $(seq 50); do
		if curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$p/healthz"; then ready=1; break; fi
		sleep 0.1
	done
	[ "$ready" = 1 ] || { cat "$TMP/backend.log" >&2; die "backend on port $p did not answer within 5s"; }
done
mapfile -t BACKEND_TREE < <(descendants "$BACKEND_PID")

OUT_DIR=${OUT_DIR:-$REPO/bench/results}
mkdir -p "$OUT_DIR"
CSV="$OUT_DIR/peers-$(date +%Y%m%d-%H%M%S).csv"
echo "round,position,peer,attempt,status,quiet,wall_s,requests,rps,p50_ms,p99_ms,proxy_cpu_s,cpu_s_per_100k,wrk_cpu_s,backend_cpu_s,other_cpu_s,other_tick_s,other_proc_s,steal_s,socket_errors,non2xx,connections" >"$CSV"

START=$SECONDS
for r in $(seq "$ROUNDS"); do
	order=("${PEER_LIST[@]}")
	if [ $((r % 2)) = 0 ]; then
		order=(); for ((i = ${#PEER_LIST[@]} - 1; i >= 0; i--)); do order+=("${PEER_LIST[$i]}"); done
	fi
	pos=0
	for p in "${order[@]}"; do
		[ -z "${SKIP[$p]:-}" ] || continue
		pos=$((pos + 1))
		check_deadline
		if ! run_peer "$p" "$r" "$pos"; then
			SKIP[$p]=1
		fi
	done
done
ELAPSED=$((SECONDS - START))

print_summary "Measured in ${ELAPSED}s."

FAILED=()
for p in "${PEER_LIST[@]}"; do [ "${NRUNS[$p]:-0}" -gt 0 ] || FAILED+=("$p"); done
if [ "${#FAILED[@]}" -gt 0 ]; then
	log "not measured: ${FAILED[*]}"
	exit 3
fi
exit 0

#!/usr/bin/env bash
# bench/abuse-bench.sh
#
# Abuse benchmark: what `blobctl serve` with its DEFAULT limits holds in memory
# and answers when clients misbehave, next to Debian's docker-registry (CNCF
# distribution 2.8, the baseline) in the same run. The driver is
# bench/registry-abuse.py (Python 3, stdlib only); per server, one fresh server
# and data dir, and these phases in order, each with the server already up:
#
#   1 connections      3000 TCP connections at once, each sending a partial
#                      request head ("GET /v2/ HTTP/1.1\r\nHost: x\r\n") and then
#                      nothing, held ~5 s; one normal GET /v2/ on a fresh
#                      connection near the end of the hold must still work
#   2 uploads          2000 POST /v2/abuse/blobs/uploads/ (32 at a time), never finished
#   3 patch-flood      200 upload sessions opened, then 200 concurrent 8 MiB PATCHes
#   4 slow-readers     300 concurrent GETs of a 64 MiB random blob (pushed first,
#                      untimed) whose clients read nothing for 5 s, then close
#   5 range-flood      100 concurrent GETs of that blob with Range: bytes=0-,0-,...
#                      (200 ranges), read to the end; bytes the server sent
#   6 monolithic-huge  50 POST ?digest= declaring Content-Length 100 GiB, sending
#                      1 MiB, then closing
#
# The upload sessions phases 2 and 3 leave open are cancelled (DELETE, untimed)
# after each of them, so that phase 3 is not just the session cap of phase 2.
#
# Per phase: server peak RSS (VmHWM from /proc/PID/status, reset before the phase
# by writing 5 to /proc/PID/clear_refs), RSS right after it, server CPU seconds
# (utime+stime from /proc/PID/stat), the driver's wall time and a histogram of
# outcomes (HTTP status, or held/closed/reset/timeout). VmHWM cannot be reset
# below the current RSS, so memory an earlier phase left resident (freed but not
# returned to the kernel) sets a floor: the table also shows the RSS each phase
# started from, and FRESH=1 runs each phase on a fresh server. A server that dies is
# restarted for the remaining phases (and the table says SERVER DIED).
#
# Environment:
#   BLOBCTL=PATH      blobctl binary (default REPO/.build/release/blobctl); a
#                     private copy is run, so a rebuild during the run does not matter
#   SERVERS=LIST      comma list of blobstore,registry (default: both)
#   PHASES=LIST       comma list of phase names (default: all six)
#   CONNS, HOLD, UPLOADS, PATCH_SESSIONS, PATCH_MIB, BLOB_MIB, SLOW_READERS,
#   SLOW_IDLE, RANGE_CLIENTS, RANGES, HUGE_CLIENTS, HUGE_GIB
#                     the phases' sizes (defaults as above; see registry-abuse.py)
#   FRESH=1           a fresh server (and data dir) for every phase, so that no
#                     phase inherits the memory an earlier one left resident
#   OUT_JSON=FILE     also write all figures as JSON to FILE
#   LOG_DIR=DIR       where the server logs are kept (default /tmp/abuse-bench-logs)
#   BENCH_TMPDIR=DIR  parent of the scratch dir (default /work/tmp-bench if /work
#                     exists, else ${TMPDIR:-/tmp}); removed at the end unless KEEP=1
#
# `ulimit -n` is raised to the hard limit (at most 65536; 3000 connections need
# ~3100 descriptors) for the driver and both servers. Runs in ~3-4 min on 2 cores.
set -euo pipefail
export LC_ALL=C

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)
SERVERS=${SERVERS:-blobstore,registry}
PHASES=${PHASES:-connections,uploads,patch-flood,slow-readers,range-flood,monolithic-huge}
LOG_DIR=${LOG_DIR:-/tmp/abuse-bench-logs}
KEEP=${KEEP:-0}
FRESH=${FRESH:-0}
DRIVER=$SCRIPT_DIR/registry-abuse.py

log() { printf '[abuse] %s\n' "$*" >&2; }
die() { printf '[abuse] ERROR: %s\n' "$*" >&2; exit 1; }
. "$SCRIPT_DIR/lib.sh" # ensure, scratch_parent, stop_pid, free_port, wait_ready, registry_config, stop_server
want() { [[ ",$SERVERS," == *",$1,"* ]]; }
want_phase() { [[ ",$PHASES," == *",$1,"* ]]; }

# ------------------------------------------------------------ prerequisites ---
PY=python3; command -v "$PY" >/dev/null 2>&1 || PY=/usr/bin/python3
command -v "$PY" >/dev/null 2>&1 || ensure python3 python3-minimal
ensure curl curl
[ -f "$DRIVER" ] || die "no $DRIVER"
REGISTRY_BIN=
if want registry; then
  if ! dpkg -s docker-registry >/dev/null 2>&1; then
    log "installing package docker-registry (run by hand below, not through systemd)"
    ensure docker-registry docker-registry
  fi
  REGISTRY_BIN=$(dpkg -L docker-registry | grep -m1 '/bin/docker-registry$' || true)
  [ -x "$REGISTRY_BIN" ] || die "no docker-registry binary in package docker-registry"
fi
if want blobstore; then
  BLOBCTL=${BLOBCTL:-$REPO_DIR/.build/release/blobctl}
  [ -x "$BLOBCTL" ] || die "BLOBCTL=$BLOBCTL is not an executable (build it with swift build -c release --product blobctl)"
  BLOBCTL=$(realpath "$BLOBCTL")
fi

hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -gt 65536 ]; then nofile=65536; else nofile=$hard; fi
ulimit -Sn "$nofile" || die "cannot raise ulimit -n to $nofile"
[ "$(ulimit -Sn)" -ge $(( ${CONNS:-3000} + 500 )) ] || die "ulimit -n $(ulimit -Sn) is too low for ${CONNS:-3000} connections"

# ------------------------------------------------------------- scratch dir ---
PARENT=$(scratch_parent)
W=$(mktemp -d "$PARENT/abuse-bench.XXXXXX")
SERVER_PIDS=()
cleanup() {
  local rc=$? p
  for p in "${SERVER_PIDS[@]}"; do stop_pid "$p"; done
  if [ "$KEEP" = 1 ]; then log "kept scratch dir $W"; else rm -rf "$W"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
RES=$W/results.tsv   # server step hwm_kib rss_after_kib server_cpu_s alive rss_before_kib json
STATE=$W/state       # the driver's files: the 64 MiB blob, open upload sessions
: > "$RES"; mkdir -p "$STATE"
rm -rf "$LOG_DIR"; mkdir -p "$LOG_DIR"
if [ -n "${BLOBCTL:-}" ]; then
  BLOBCTL_INFO="$BLOBCTL ($(stat -c '%y' "$BLOBCTL" | cut -d. -f1), sha256 $(sha256sum "$BLOBCTL" | cut -c1-12))"
  cp "$BLOBCTL" "$W/blobctl"; BLOBCTL=$W/blobctl
fi
log "scratch $W, server logs in $LOG_DIR, ulimit -n $(ulimit -Sn)"

# ----------------------------------------------------------------- servers ---
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
proc_cpu_ticks() { # utime+stime of PID (fields 14, 15; the comm field may hold spaces)
  local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  s=${s##*) }
  # shellcheck disable=SC2086
  set -- $s
  echo $(( ${12} + ${13} ))
}
proc_hwm_kib() { awk '/^VmHWM:/{print $2; exit}' "/proc/$1/status" 2>/dev/null || echo 0; }
proc_rss_kib() { awk '/^VmRSS:/{print $2; exit}' "/proc/$1/status" 2>/dev/null || echo 0; }
reset_hwm() { echo 5 > "/proc/$1/clear_refs" 2>/dev/null || true; }

SRV_PID=; SRV_PORT=; SRV_STARTS=0
start_server() { # start_server SERVER : sets SRV_PID SRV_PORT; a fresh data dir each time
  local srv=$1 dir=$W/srv-$1
  SRV_STARTS=$((SRV_STARTS + 1))
  local logf=$LOG_DIR/$srv.log; [ "$SRV_STARTS" -gt 1 ] && logf=$LOG_DIR/$srv.$SRV_STARTS.log
  rm -rf "$dir"; mkdir -p "$dir"
  SRV_PORT=$(free_port)
  case "$srv" in
    blobstore)
      "$BLOBCTL" serve --store "$dir/store" --addr "127.0.0.1:$SRV_PORT" > "$logf" 2>&1 &
      SRV_PID=$! ;;
    registry)
      mkdir -p "$dir/data"
      registry_config "$dir/data" "$SRV_PORT" > "$dir/config.yml"
      "$REGISTRY_BIN" serve "$dir/config.yml" > "$logf" 2>&1 &
      SRV_PID=$! ;;
  esac
  SERVER_PIDS+=("$SRV_PID")
  wait_ready "$SRV_PORT" "$SRV_PID" "$logf"
  log "$srv: server pid $SRV_PID on 127.0.0.1:$SRV_PORT, log $logf"
}

# ------------------------------------------------------------- measurement ---
# run_step SERVER STEP : reset VmHWM, run the driver's STEP, record VmHWM, RSS,
# server CPU and whether the server survived; restarts a dead server.
run_step() {
  local srv=$1 st=$2 out=$W/out.json err=$W/out.err c0 c1 hwm rss rss0 alive=1 rc=0 js
  kill -0 "$SRV_PID" 2>/dev/null || die "$srv: the server (pid $SRV_PID) is not running before $st"
  log "$srv: $st"
  sleep 1   # let the previous step's connections wind down
  reset_hwm "$SRV_PID"
  rss0=$(proc_rss_kib "$SRV_PID")   # VmHWM restarts from here: it cannot drop below the RSS
  c0=$(proc_cpu_ticks "$SRV_PID")
  "$PY" "$DRIVER" "$st" --port "$SRV_PORT" --state "$STATE" > "$out" 2> "$err" || rc=$?
  c1=$(proc_cpu_ticks "$SRV_PID"); hwm=$(proc_hwm_kib "$SRV_PID"); rss=$(proc_rss_kib "$SRV_PID")
  kill -0 "$SRV_PID" 2>/dev/null || alive=0
  js=$(tail -n 1 "$out" 2>/dev/null || true)
  if [ "$rc" != 0 ] || [ -z "$js" ]; then
    log "$srv $st: driver failed (exit $rc):"; tail -n 15 "$err" | sed 's/^/    /' >&2
    js="{\"error\": \"driver exit $rc: $(tail -n 1 "$err" | tr -d '"\\' | cut -c1-150)\"}"
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$srv" "$st" "${hwm:-0}" "${rss:-0}" \
    "$(awk -v a="$c0" -v b="$c1" -v hz="$CLK_TCK" 'BEGIN{printf "%.2f", (b-a)/hz}')" "$alive" "${rss0:-0}" "$js" >> "$RES"
  log "    peak RSS $(( ${hwm:-0} / 1024 )) MiB (from $(( ${rss0:-0} / 1024 ))), RSS after $(( ${rss:-0} / 1024 )) MiB: $(printf '%s' "$js" | cut -c1-200)"
  if [ "$alive" = 0 ]; then
    log "$srv: SERVER DIED during $st; last log lines:"; tail -n 20 "$LOG_DIR/$srv"*.log | sed 's/^/    /' >&2
    wait "$SRV_PID" 2>/dev/null || true
    local keep=() p; for p in "${SERVER_PIDS[@]}"; do [ "$p" = "$SRV_PID" ] || keep+=("$p"); done
    SERVER_PIDS=("${keep[@]}"); SRV_PID=
    start_server "$srv"
  fi
}

run_server() { # run_server SERVER
  local srv=$1
  SRV_STARTS=0
  start_server "$srv"
  sleep 1
  local rss; rss=$(proc_rss_kib "$SRV_PID")
  printf '%s\tidle\t%s\t%s\t0\t1\t%s\t{}\n' "$srv" "$(proc_hwm_kib "$SRV_PID")" "$rss" "$rss" >> "$RES"
  local ph first=1
  for ph in connections uploads patch-flood slow-readers range-flood monolithic-huge; do
    want_phase "$ph" || continue
    if [ "$FRESH" = 1 ] && [ "$first" = 0 ]; then stop_server; rm -f "$STATE"/sessions.*; start_server "$srv"; sleep 1; fi
    first=0
    case "$ph" in
      slow-readers|range-flood) run_step "$srv" push-blob ;;   # already there: one HEAD
    esac
    run_step "$srv" "$ph"
    case "$ph" in
      uploads|patch-flood) run_step "$srv" cancel-uploads ;;
    esac
  done
  stop_server
  rm -f "$STATE"/sessions.*
  rm -rf "$W/srv-$srv"
}

START=$(date +%s)
for srv in blobstore registry; do want "$srv" && run_server "$srv"; done

# ------------------------------------------------------------------ report ---
echo
echo "Abuse benchmark: blobctl serve with default limits vs docker-registry, 127.0.0.1, $(nproc) cores$([ "$FRESH" = 1 ] && echo ", a fresh server per phase")"
[ -n "${BLOBCTL_INFO:-}" ] && echo "blobctl: $BLOBCTL_INFO"
[ -n "$REGISTRY_BIN" ] && echo "docker-registry: $("$REGISTRY_BIN" --version 2>&1 | head -n 1)"
echo
"$PY" "$DRIVER" report "$RES" ${OUT_JSON:+--json "$OUT_JSON"}
echo
"$PY" "$DRIVER" logs "$LOG_DIR"/*.log
log "done in $(( $(date +%s) - START )) s"

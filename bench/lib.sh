# Shared helpers of the bench scripts; sourced after each defines log() and die().

APT_UPDATED=0
# ensure COMMAND PACKAGE: installs PACKAGE from Debian when COMMAND is missing.
ensure() {
  command -v "$1" >/dev/null 2>&1 && return 0
  log "$1 not found; installing package $2"
  command -v apt-get >/dev/null || die "$1 missing and no apt-get to install $2"
  if [ "$APT_UPDATED" = 0 ]; then apt-get update -qq >&2 || true; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >&2 || die "could not install $2"
  command -v "$1" >/dev/null 2>&1 || die "$1 still missing after installing $2"
}

# scratch_parent: prints (and creates) the absolute folder scratch dirs go in:
# $BENCH_TMPDIR, else /work/tmp-bench when /work is writable, else $TMPDIR or /tmp.
scratch_parent() {
  local parent
  if [ -n "${BENCH_TMPDIR:-}" ]; then parent=$BENCH_TMPDIR
  elif [ -d /work ] && [ -w /work ]; then parent=/work/tmp-bench
  else parent=${TMPDIR:-/tmp}; fi
  mkdir -p "$parent"
  realpath "$parent"
}

# stop_pid PID [SECONDS]: SIGTERM, then SIGKILL after SECONDS (default 15); reaps it.
stop_pid() {
  local pid=$1 limit=${2:-15} i
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 $((limit * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then log "pid $pid ignored SIGTERM; killing it"; kill -KILL "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
}

# free_port: a loopback port nobody listens on now (needs $PY).
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }

# wait_ready PORT PID LOG: until GET /v2/ answers 200, or the server dies (30 s at most).
wait_ready() {
  local i code
  for i in $(seq 1 300); do
    kill -0 "$2" 2>/dev/null || { tail -n 20 "$3" >&2; die "server (pid $2) exited during start-up"; }
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/v2/" 2>/dev/null || true)
    [ "$code" = 200 ] && return 0
    sleep 0.1
  done
  tail -n 20 "$3" >&2; die "server on port $1 not ready after 30 s"
}

# registry_config ROOT PORT: docker-registry's config (filesystem storage in ROOT, deletes
# on, no upload purging, 127.0.0.1:PORT), on standard output.
registry_config() {
  cat <<EOF
version: 0.1
log:
  level: info
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: $1
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$2
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: false
EOF
}

# stop_server: stops $SRV_PID and drops it from SERVER_PIDS (the scripts' exit trap list).
stop_server() {
  [ -n "$SRV_PID" ] || return 0
  stop_pid "$SRV_PID"
  local keep=() p; for p in "${SERVER_PIDS[@]}"; do [ "$p" = "$SRV_PID" ] || keep+=("$p"); done
  SERVER_PIDS=("${keep[@]}"); SRV_PID=
}

#!/usr/bin/env bash
# bench/registry-bench.sh [CORPUS_DIR]
#
# Registry benchmark: `blobctl serve` against Debian's docker-registry (CNCF
# distribution 2.8) on loopback. For each server, skopeo pushes and then pulls
# two OCI images built from the layer-tar corpus of shared/bench/make-corpus.sh:
#
#   v1 = base.tar + app-v1.tar + small.tar      v2 = base.tar + app-v2.tar + small-v2.tar
#
# Configurations (one fresh server and data dir each):
#   blobstore      blobctl serve, uncompressed layers pushed as they are
#   registry       docker-registry, uncompressed layers pushed as they are
#   registry-zstd  docker-registry, skopeo compressing the layers to zstd on push
#                  (--dest-compress-format zstd), how people make it store less
#   blobstore-gz   blobctl serve, gzip layers (gzip -n -6) pushed as they are
#   registry-gz    docker-registry, the same gzip layers
#   docker-blobstore  blobctl serve, a real Docker Engine (dockerd) as the client
#   docker-registry   docker-registry, the same Docker Engine as the client
# plus a many-client pull: CLIENTS (8) curl clients GET every blob of image v1
# at once (each client CLIENT_PARALLEL=3 blobs at a time, like dockerd), from
# blobstore and from the uncompressed docker-registry.
#
#   CORPUS_DIR   default $HOME/.cache/blobstore-corpus; built with
#                ../../shared/bench/make-corpus.sh when its corpus.tsv is missing.
#
# Environment:
#   BLOBCTL=PATH      blobctl binary (default REPO/.build/release/blobctl). If it
#                     is missing while a `swift build` runs, wait for it (up to
#                     BUILD_WAIT=1800 s); if no build runs, build it with
#                     `swift build -c release --product blobctl`.
#   CONFIGS=LIST      comma list of blobstore,registry,registry-zstd,blobstore-gz,
#                     registry-gz,docker-blobstore,docker-registry (default: all)
#   CLIENTS=N         many-client pull: concurrent clients (default 8; 0: skip)
#   CLIENT_PARALLEL=N blobs each client fetches at once (default 3)
#   INIT_ARGS="..."   `blobctl init` options for blobstore's store (e.g. "--level 0":
#                     pushes stored raw, for the settler to compress later)
#   GC_INTERVAL=S     blobctl serve --gc-interval (default 0: off; nothing is
#                     deleted during the run, so GC would find nothing)
#   SETTLE_IDLE=S     blobctl serve --settle-idle (default 60, the server's own)
#   SETTLE_WAIT=S     after the pulls, wait up to S s (default 900; 0: don't) for the
#                     server's settler to finish (first repetition only), and
#                     report stored_settled: what the store keeps once settled
#   OUT_JSON=FILE     also write all figures as JSON to FILE
#   BENCH_TMPDIR=DIR  parent of the scratch dir (default /work/tmp-bench if /work
#                     exists, else ${TMPDIR:-/tmp}); removed at the end unless KEEP=1
#   REPEAT=N          run everything N times (fresh servers each time), report
#                     each step's best (lowest wall) run (default 1)
#
# Every step runs once (or REPEAT times) with the server already up. Client
# figures come from `/usr/bin/time -f '%e %U %S %M'` around skopeo/curl; server
# CPU seconds are utime+stime from /proc/PID/stat before and after the step;
# server peak RSS is VmHWM from /proc/PID/status (reset per step by writing 5
# to /proc/PID/clear_refs). MB/s = image bytes / 1e6 / wall seconds, where
# image bytes are the uncompressed layer (+config) bytes moved for the plain and
# zstd configurations and the gzip bytes for the -gz ones. Push v2 counts only
# the blobs v1 did not already push (skopeo skips base.tar by a HEAD); each
# pull goes into a fresh OCI layout, so it moves the whole image.
# Stored bytes = `du -sb` of the server's data dir after v1 and after v2.
#
# Docker rows: one private dockerd (Debian docker.io; data root, exec root and
# socket in a mktemp dir under /tmp, --bridge=none, no iptables, overlay2, its
# own DOCKER_CONFIG), started once, stopped (SIGTERM) and removed on exit. Per
# configuration the images are `docker load`ed (untimed) from a docker-archive
# built from the plain OCI layout: the same config blobs and the corpus tars as
# layers, so the engine's diff_ids are the corpus sha256s and its image IDs are
# the OCI config digests. Steps: `docker push` v1, `docker push` v2 (dockerd
# gzips each layer itself and skips base.tar after a HEAD), then every image is
# removed (`docker rmi -f`, `docker image prune -a`; the overlay2 dir must be
# empty) and `docker pull` v1 fetches all of v1, then `docker pull` v2 fetches
# what v1 lacked. MB/s is over the uncompressed bytes (layers + config) moved,
# as in the plain rows; the gzip bytes on the wire come from the pushed
# manifests. Client CPU and RSS for these rows are the docker CLI's plus
# dockerd's (utime+stime+cutime+cstime, so reaped children such as unpigz and
# docker-untar count; VmHWM of dockerd, reset per step).
set -euo pipefail
export LC_ALL=C

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)
CORPUS=$(realpath -m "${1:-$HOME/.cache/blobstore-corpus}")
CONFIGS=${CONFIGS:-blobstore,registry,registry-zstd,blobstore-gz,registry-gz,docker-blobstore,docker-registry}
CLIENTS=${CLIENTS:-8}
CLIENT_PARALLEL=${CLIENT_PARALLEL:-3}
GC_INTERVAL=${GC_INTERVAL:-0}
SETTLE_IDLE=${SETTLE_IDLE:-60}
SETTLE_WAIT=${SETTLE_WAIT:-900}
INIT_ARGS=${INIT_ARGS:-}
BUILD_WAIT=${BUILD_WAIT:-1800}
KEEP=${KEEP:-0}
REPEAT=${REPEAT:-1}
[[ "$REPEAT" =~ ^[1-9][0-9]*$ ]] || { echo "REPEAT must be a positive integer" >&2; exit 2; }
[[ "$CLIENTS" =~ ^[0-9]+$ ]] || { echo "CLIENTS must be a number" >&2; exit 2; }
REP=1
REPO_NAME=bench/app

V1_FILES=(base.tar app-v1.tar small.tar)
V2_FILES=(app-v2.tar small-v2.tar)
ALL_FILES=("${V1_FILES[@]}" "${V2_FILES[@]}")

log() { printf '[rbench] %s\n' "$*" >&2; }
die() { printf '[rbench] ERROR: %s\n' "$*" >&2; exit 1; }
. "$SCRIPT_DIR/lib.sh" # scratch_parent, stop_pid, free_port, wait_ready, registry_config, stop_server
want() { [[ ",$CONFIGS," == *",$1,"* ]]; }
want_any() { local c; for c in "$@"; do want "$c" && return 0; done; return 1; }

# ------------------------------------------------------------ prerequisites ---
APT_UPDATED=0
apt_install() { # apt_install PACKAGE
  command -v apt-get >/dev/null || die "package $1 is missing and there is no apt-get"
  if [ "$APT_UPDATED" = 0 ]; then apt-get update -qq >&2 || true; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >&2 || die "could not install $1"
}
ensure() { # ensure COMMAND PACKAGE
  command -v "$1" >/dev/null 2>&1 && return 0
  log "$1 not found; installing package $2"
  apt_install "$2"
  command -v "$1" >/dev/null 2>&1 || die "$1 still missing after installing $2"
}
[ -x /usr/bin/time ] || { log "installing package time"; apt_install time; }
PY=python3; command -v "$PY" >/dev/null 2>&1 || PY=/usr/bin/python3
command -v "$PY" >/dev/null 2>&1 || ensure python3 python3-minimal
ensure skopeo skopeo
ensure curl curl
ensure gzip gzip
REGISTRY_BIN=
if want_any registry registry-zstd registry-gz docker-registry; then
  if ! dpkg -s docker-registry >/dev/null 2>&1; then
    log "installing package docker-registry (run by hand below, not through systemd)"
    apt_install docker-registry
  fi
  REGISTRY_BIN=$(dpkg -L docker-registry | grep -m1 '/bin/docker-registry$' || true)
  [ -x "$REGISTRY_BIN" ] || die "no docker-registry binary in package docker-registry"
fi
GZIP_CMD=gzip; command -v pigz >/dev/null 2>&1 && GZIP_CMD=pigz
if want_any docker-blobstore docker-registry; then
  ensure dockerd docker.io
  ensure docker docker.io
fi

# ------------------------------------------------------------------- corpus ---
if [ ! -s "$CORPUS/corpus.tsv" ]; then
  MAKE_CORPUS=$SCRIPT_DIR/../../shared/bench/make-corpus.sh
  [ -f "$MAKE_CORPUS" ] || die "no corpus at $CORPUS and no $MAKE_CORPUS to build one"
  log "no corpus.tsv in $CORPUS; building it with $MAKE_CORPUS (downloads, several minutes)"
  bash "$MAKE_CORPUS" "$CORPUS" >&2 || die "corpus build failed"
fi
for f in "${ALL_FILES[@]}"; do [ -s "$CORPUS/$f" ] || die "corpus file missing: $CORPUS/$f"; done

# ------------------------------------------------------------------ blobctl ---
if want_any blobstore blobstore-gz docker-blobstore; then
  if [ -z "${BLOBCTL:-}" ]; then
    BLOBCTL=$REPO_DIR/.build/release/blobctl
    waited=0
    while [ ! -x "$BLOBCTL" ] && pgrep -f swift-build >/dev/null 2>&1; do
      [ "$waited" = 0 ] && log "waiting for the running swift build to produce $BLOBCTL"
      [ "$waited" -ge "$BUILD_WAIT" ] && die "no $BLOBCTL after waiting ${BUILD_WAIT}s"
      sleep 10; waited=$((waited + 10))
    done
    if [ ! -x "$BLOBCTL" ]; then
      command -v swift >/dev/null || die "no $BLOBCTL and no swift toolchain to build it (set BLOBCTL=...)"
      log "building blobctl: swift build -c release --product blobctl"
      (cd "$REPO_DIR" && swift build -c release --product blobctl >&2) || die "swift build failed"
    fi
  fi
  [ -x "$BLOBCTL" ] || die "BLOBCTL=$BLOBCTL is not an executable"
  BLOBCTL=$(realpath "$BLOBCTL")
fi

# ------------------------------------------------------------- scratch dir ---
PARENT=$(scratch_parent)
W=$(mktemp -d "$PARENT/registry-bench.XXXXXX")
SERVER_PIDS=()
DOCKERD_PID=; DOCKER_DIR=
stop_dockerd() { # SIGTERM the private dockerd, wait for it, remove its dir
  [ -n "$DOCKERD_PID" ] && stop_pid "$DOCKERD_PID"
  DOCKERD_PID=
  if [ -n "$DOCKER_DIR" ] && [ -d "$DOCKER_DIR" ]; then
    # overlay mounts normally go with dockerd; unmount any that did not
    awk -v d="$DOCKER_DIR/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
    rm -rf "$DOCKER_DIR" 2>/dev/null || log "could not remove $DOCKER_DIR completely"
  fi
  DOCKER_DIR=
}
cleanup() {
  local rc=$? p
  for p in "${SERVER_PIDS[@]}"; do stop_pid "$p"; done
  stop_dockerd
  if [ "$KEEP" = 1 ]; then log "kept scratch dir $W"; else rm -rf "$W"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
RES=$W/results.tsv   # config phase wall cuser csys crss_kib srv_cpu srv_hwm_kib bytes wire rep other anon file
SIZES=$W/sizes.tsv   # config metric value
EXTRA=$W/extra.tsv   # key value
WIRE=$W/wire.tsv     # config phase bytes: bytes on the wire where they differ (zstd)
: > "$RES"; : > "$SIZES"; : > "$EXTRA"; : > "$WIRE"
extra() { printf '%s\t%s\n' "$1" "$2" >> "$EXTRA"; }
mkdir -p "$W/out" "$W/tmp"
export TMPDIR=$W/tmp   # skopeo's temporary files
log "corpus $CORPUS, scratch $W"
if [ -n "${BLOBCTL:-}" ]; then
  # run a private copy: the lead may rebuild .build/release/blobctl during the run
  extra blobctl "$BLOBCTL ($(stat -c '%y' "$BLOBCTL" | cut -d. -f1), sha256 $(sha256sum "$BLOBCTL" | cut -c1-12))"
  cp "$BLOBCTL" "$W/blobctl"; BLOBCTL=$W/blobctl
fi

# ----------------------------------------------------------- image layouts ---
# One OCI layout per layer encoding, tagged v1 and v2; blobs are hard links to
# the corpus files (copies across file systems). blobs.tsv lists, per tag,
# kind digest size uncompressed-size new-in-tag (1 when v1 has no such blob).
make_layouts() {
  log "building OCI layouts (plain$(want_any blobstore-gz registry-gz && echo ", gzip with $GZIP_CMD -n -6"))"
  "$PY" - "$CORPUS" "$W/layouts" "$GZIP_CMD" "$(want_any blobstore-gz registry-gz && echo 1 || echo 0)" <<'EOF'
import hashlib, json, os, shutil, subprocess, sys
corpus, out, gzip_cmd, want_gz = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
images = {"v1": ["base.tar", "app-v1.tar", "small.tar"], "v2": ["base.tar", "app-v2.tar", "small-v2.tar"]}
files = sorted({f for fs in images.values() for f in fs})
sha = {}
for line in open(os.path.join(corpus, "corpus.tsv")):
    p = line.rstrip("\n").split("\t")
    if len(p) >= 3 and p[0] != "name": sha[p[0]] = p[2]
for f in files:
    if f not in sha: sys.exit("corpus.tsv has no sha256 for " + f)

def put_bytes(layout, data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", d), "wb") as fh: fh.write(data)
    return d, len(data)

def file_sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            b = fh.read(1 << 22)
            if not b: break
            h.update(b)
    return h.hexdigest()

def build(name, layer_type, layer_blob):
    layout = os.path.join(out, name)
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(layout, "oci-layout"), "w") as fh: json.dump({"imageLayoutVersion": "1.0.0"}, fh)
    layers = {f: layer_blob(layout, f) for f in files}      # f -> (digest, size)
    index, rows, seen = [], [], set()
    for tag in ("v1", "v2"):
        cfg = {"architecture": "amd64", "os": "linux", "config": {},
               "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sha[f] for f in images[tag]]},
               "history": [{"created_by": "registry-bench " + f} for f in images[tag]]}
        cd, cs = put_bytes(layout, json.dumps(cfg, sort_keys=True).encode())
        man = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
               "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + cd, "size": cs},
               "layers": [{"mediaType": layer_type, "digest": "sha256:" + layers[f][0], "size": layers[f][1]} for f in images[tag]]}
        md, ms = put_bytes(layout, json.dumps(man, sort_keys=True).encode())
        index.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + md, "size": ms,
                      "annotations": {"org.opencontainers.image.ref.name": tag}})
        rows.append((tag, "config", cd, cs, cs, int(cd not in seen))); seen.add(cd)
        for f in images[tag]:
            d, s = layers[f]
            rows.append((tag, "layer:" + f, d, s, os.path.getsize(os.path.join(corpus, f)), int(d not in seen))); seen.add(d)
    with open(os.path.join(layout, "index.json"), "w") as fh:
        json.dump({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": index}, fh)
    with open(os.path.join(layout, "blobs.tsv"), "w") as fh:
        for r in rows: fh.write("\t".join(map(str, r)) + "\n")

def plain_blob(layout, f):
    dst = os.path.join(layout, "blobs", "sha256", sha[f])
    if not os.path.exists(dst):
        try: os.link(os.path.join(corpus, f), dst)
        except OSError: shutil.copyfile(os.path.join(corpus, f), dst)
    return sha[f], os.path.getsize(dst)

build("plain", "application/vnd.oci.image.layer.v1.tar", plain_blob)

if want_gz:
    gzdir = os.path.join(out, "gz-tmp"); os.makedirs(gzdir, exist_ok=True)
    procs = {}
    for f in files:   # all at once; the CPU count bounds the wall time anyway
        fh = open(os.path.join(gzdir, f + ".gz"), "wb")
        procs[f] = (subprocess.Popen([gzip_cmd, "-n", "-6", "-c", os.path.join(corpus, f)], stdout=fh), fh)
    for f, (p, fh) in procs.items():
        if p.wait() != 0: sys.exit("%s failed on %s" % (gzip_cmd, f))
        fh.close()
    def gz_blob(layout, f):
        src = os.path.join(gzdir, f + ".gz"); d = file_sha(src)
        dst = os.path.join(layout, "blobs", "sha256", d)
        if not os.path.exists(dst): os.rename(src, dst)
        return d, os.path.getsize(dst)
    build("gzip", "application/vnd.oci.image.layer.v1.tar+gzip", gz_blob)
    shutil.rmtree(gzdir)
EOF
}

# image bytes: bytes_of LAYOUT TAG all|new [wire|raw]
bytes_of() {
  awk -F'\t' -v t="$2" -v m="$3" -v k="${4:-wire}" \
    '$1==t && (m=="all" || $6==1) {s += (k=="raw" ? $5 : $4)} END {printf "%.0f", s}' "$W/layouts/$1/blobs.tsv"
}
blob_digests() { awk -F'\t' -v t="$2" '$1==t {print "sha256:" $3}' "$W/layouts/$1/blobs.tsv"; }

# ----------------------------------------------------------------- servers ---
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
cpu_busy_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9; exit}' /proc/stat; }
proc_cpu_ticks() { # utime+stime of PID (fields 14, 15; the comm field may hold spaces)
  local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  s=${s##*) }
  # shellcheck disable=SC2086
  set -- $s
  echo $(( ${12} + ${13} ))
}
proc_cpu_ticks_all() { # utime+stime+cutime+cstime of PID (fields 14-17: reaped children too)
  local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  s=${s##*) }
  # shellcheck disable=SC2086
  set -- $s
  echo $(( ${12} + ${13} + ${14} + ${15} ))
}
proc_hwm_kib() { awk '/^VmHWM:/{print $2; exit}' "/proc/$1/status" 2>/dev/null || echo 0; }
proc_rss_split() { # "anon_kib file_kib" resident now (file = mmapped files such as LMDB)
  awk '/^RssAnon:/{a=$2} /^RssFile:/{f=$2} END{printf "%d %d", a, f}' "/proc/$1/status" 2>/dev/null || echo "0 0"
}
reset_hwm() { echo 5 > "/proc/$1/clear_refs" 2>/dev/null || true; }

SRV_PID=; SRV_PORT=; SRV_DATA=; SRV_KIND=
CLIENT_DAEMON_PID=   # dockerd during the docker configurations: its CPU and peak RSS are the client's
start_server() { # start_server CONFIG : sets SRV_PID SRV_PORT SRV_DATA SRV_KIND
  local cfg=$1 dir=$W/srv-$1
  rm -rf "$dir"; mkdir -p "$dir"
  SRV_PORT=$(free_port)
  case "${cfg#docker-}" in
    blobstore*)
      SRV_KIND=blobstore; SRV_DATA=$dir/store
      # shellcheck disable=SC2086
      [ -z "$INIT_ARGS" ] || "$BLOBCTL" --store "$SRV_DATA" init $INIT_ARGS > /dev/null || die "blobctl init $INIT_ARGS failed"
      "$BLOBCTL" serve --store "$SRV_DATA" --addr "127.0.0.1:$SRV_PORT" --gc-interval "$GC_INTERVAL" \
        --settle-idle "$SETTLE_IDLE" \
        > "$dir/server.log" 2>&1 &
      SRV_PID=$! ;;
    registry*)
      SRV_KIND=registry; SRV_DATA=$dir/data; mkdir -p "$SRV_DATA"
      registry_config "$SRV_DATA" "$SRV_PORT" > "$dir/config.yml"
      "$REGISTRY_BIN" serve "$dir/config.yml" > "$dir/server.log" 2>&1 &
      SRV_PID=$! ;;
  esac
  SERVER_PIDS+=("$SRV_PID")
  wait_ready "$SRV_PORT" "$SRV_PID" "$dir/server.log"
  log "$cfg: server pid $SRV_PID on 127.0.0.1:$SRV_PORT, data $SRV_DATA"
}

# ------------------------------------------------------------- measurement ---
# step CONFIG PHASE BYTES WIRE CMD... : run CMD under GNU time, reading the
# server's CPU ticks and (reset) VmHWM around it. Returns CMD's status.
step() {
  local cfg=$1 phase=$2 bytes=$3 wire=$4; shift 4
  local tf=$W/out/$cfg.$phase.time out=$W/out/$cfg.$phase.out err=$W/out/$cfg.$phase.err rc=0
  log "$cfg: $phase${REPEAT_TAG:-}"
  kill -0 "$SRV_PID" 2>/dev/null || die "$cfg: the server (pid $SRV_PID) is not running"
  reset_hwm "$SRV_PID"
  local s0 s1 b0 b1 hwm d0=0 d1=0 dhwm=0
  if [ -n "$CLIENT_DAEMON_PID" ]; then reset_hwm "$CLIENT_DAEMON_PID"; d0=$(proc_cpu_ticks_all "$CLIENT_DAEMON_PID"); fi
  s0=$(proc_cpu_ticks "$SRV_PID"); b0=$(cpu_busy_ticks)
  /usr/bin/time -f '%e %U %S %M' -o "$tf" "$@" > "$out" 2> "$err" || rc=$?
  b1=$(cpu_busy_ticks); s1=$(proc_cpu_ticks "$SRV_PID"); hwm=$(proc_hwm_kib "$SRV_PID")
  if [ -n "$CLIENT_DAEMON_PID" ]; then
    d1=$(proc_cpu_ticks_all "$CLIENT_DAEMON_PID"); dhwm=$(proc_hwm_kib "$CLIENT_DAEMON_PID")
  fi
  local split; split=$(proc_rss_split "$SRV_PID")
  if [ "$rc" != 0 ]; then
    log "$cfg $phase FAILED (exit $rc); last stderr lines:"
    tail -n 15 "$err" | sed 's/^/    /' >&2
    return "$rc"
  fi
  local wall cu cs crss other srv
  read -r wall cu cs crss < <(tail -n 1 "$tf")
  if [ -n "$CLIENT_DAEMON_PID" ]; then # the engine does the work: add dockerd's CPU, take its peak RSS
    cu=$(awk -v u="$cu" -v a="$d0" -v b="$d1" -v hz="$CLK_TCK" 'BEGIN{printf "%.2f", u+(b-a)/hz}')
    [ "$dhwm" -gt "$crss" ] && crss=$dhwm
  fi
  srv=$(awk -v a="$s0" -v b="$s1" -v hz="$CLK_TCK" 'BEGIN{printf "%.2f", (b-a)/hz}')
  other=$(awk -v b0="$b0" -v b1="$b1" -v hz="$CLK_TCK" -v u="$cu" -v s="$cs" -v v="$srv" \
    'BEGIN{o=(b1-b0)/hz-u-s-v; if(o<0)o=0; printf "%.2f", o}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$cfg" "$phase" "$wall" "$cu" "$cs" "$crss" \
    "$srv" "$hwm" "$bytes" "$wire" "$REP" "$other" ${split% *} ${split#* } >> "$RES"
  log "    wall ${wall}s  $(awk -v b="$bytes" -v w="$wall" 'BEGIN{if(w>0)printf "%.1f", b/1e6/w; else print "-"}') MB/s  server CPU ${srv}s  server peak RSS $((hwm / 1024)) MiB  client CPU $(awk -v a="$cu" -v b="$cs" 'BEGIN{printf "%.2f", a+b}')s  (other processes: ${other} CPU s)"
}
size_of() { # size_of CONFIG METRIC DIR
  printf '%s\t%s\t%s\n' "$1" "$2" "$(du -sb "$3" | cut -f1)" >> "$SIZES"
}
blob_df() { # blob_df CONFIG TAG : blobctl df --json (the server keeps running)
  local j
  if j=$("$BLOBCTL" --store "$SRV_DATA" df --json 2>"$W/out/df.err"); then
    printf '%s' "$j" > "$W/out/df.$1.$2.json"
    "$PY" - "$W/out/df.$1.$2.json" "$1" "$2" >> "$SIZES" <<'EOF' || log "could not parse df --json output"
import json, sys
d = json.load(open(sys.argv[1]))
def find(o, k):
    if isinstance(o, dict):
        if k in o and isinstance(o[k], (int, float)): return o[k]
        for v in o.values():
            r = find(v, k)
            if r is not None: return r
    return None
for k in ("logicalBytes", "uniqueBytes", "storedBytes", "packBytes"):
    v = find(d, k)
    if v is not None: print("%s\tdf_%s_%s\t%d" % (sys.argv[2], k, sys.argv[3], int(v)))
EOF
  else
    log "blobctl df --json failed: $(tail -n 3 "$W/out/df.err" | tr '\n' ' ')"
  fi
}

SK=(skopeo --insecure-policy)
push() { # push CONFIG LAYOUT TAG
  local cfg=$1 layout=$2 tag=$3 opts=(--preserve-digests)
  [ "$cfg" = registry-zstd ] && opts=(--dest-compress-format zstd)
  local bytes wire
  bytes=$(bytes_of "$layout" "$tag" new raw); wire=$(bytes_of "$layout" "$tag" new wire)
  [ "$layout" = gzip ] && bytes=$wire
  step "$cfg" "push_$tag" "$bytes" "$wire" "${SK[@]}" copy -q "${opts[@]}" --dest-tls-verify=false \
    "oci:$W/layouts/$layout:$tag" "docker://127.0.0.1:$SRV_PORT/$REPO_NAME:$tag" \
    || die "$cfg: skopeo push of $tag failed"
  # what the registry now holds for the tag (untimed): for zstd, the compressed sizes
  curl -sS --fail -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://127.0.0.1:$SRV_PORT/v2/$REPO_NAME/manifests/$tag" > "$W/out/$cfg.manifest.$tag.json" \
    || die "$cfg: cannot GET the manifest of $tag"
  if [ "$cfg" = registry-zstd ]; then
    "$PY" - "$cfg" "$tag" "$W/out" >> "$WIRE" <<'EOF'
import json, os, sys
cfg, tag, out = sys.argv[1:4]
def blobs(t):
    m = json.load(open(os.path.join(out, "%s.manifest.%s.json" % (cfg, t))))
    return {d["digest"]: d["size"] for d in [m["config"]] + m["layers"]}
cur = blobs(tag)
seen = {}
if tag == "v2": seen = blobs("v1")
print("%s\tpush_%s\t%d" % (cfg, tag, sum(s for d, s in cur.items() if d not in seen)))
print("%s\tpull_%s\t%d" % (cfg, tag, sum(cur.values())))
EOF
  fi
}
pull() { # pull CONFIG LAYOUT TAG
  local cfg=$1 layout=$2 tag=$3 dst=$W/pull-$1-$3 bytes wire
  rm -rf "$dst"
  bytes=$(bytes_of "$layout" "$tag" all raw); wire=$(bytes_of "$layout" "$tag" all wire)
  [ "$layout" = gzip ] && bytes=$wire
  step "$cfg" "pull_$tag" "$bytes" "$wire" "${SK[@]}" copy -q --preserve-digests --src-tls-verify=false \
    --dest-oci-accept-uncompressed-layers \
    "docker://127.0.0.1:$SRV_PORT/$REPO_NAME:$tag" "oci:$dst:$tag" \
    || die "$cfg: skopeo pull of $tag failed"
  # check what came back (untimed): every pushed blob, same digest (not for zstd)
  local d
  if [ "$cfg" != registry-zstd ]; then
    for d in $(awk -F'\t' -v t="$tag" '$1==t {print $3}' "$W/layouts/$layout/blobs.tsv"); do
      [ -f "$dst/blobs/sha256/$d" ] || log "WARNING: $cfg pull $tag: blob sha256:$d missing from the pulled layout"
    done
  fi
  rm -rf "$dst"
}
many_clients() { # many_clients CONFIG LAYOUT TAG
  [ "$CLIENTS" -gt 0 ] || return 0
  local cfg=$1 layout=$2 tag=$3 urls=() d one bytes
  for d in $(blob_digests "$layout" "$tag"); do
    urls+=(-o /dev/null "http://127.0.0.1:$SRV_PORT/v2/$REPO_NAME/blobs/$d")
  done
  one=$(bytes_of "$layout" "$tag" all wire); bytes=$((one * CLIENTS))
  # $0 = clients, $1 = parallel per client, $2 = out dir, rest = curl arguments
  step "$cfg" "many_$tag" "$bytes" "$bytes" bash -c '
    n=$0 par=$1 dir=$2; shift 3
    pids=()
    for i in $(seq 1 "$n"); do
      curl -sS -L --fail -Z --parallel-max "$par" -w "%{size_download}\n" "$@" > "$dir/client.$i" &
      pids+=($!)
    done
    rc=0; for p in "${pids[@]}"; do wait "$p" || rc=1; done; exit $rc' \
    "$CLIENTS" "$CLIENT_PARALLEL" "$W/out" x "${urls[@]}" || die "$cfg: many-client pull failed"
  local got; got=$(cat "$W/out"/client.* | awk '{s+=$1} END{printf "%.0f", s}')
  [ "$got" = "$bytes" ] || log "WARNING: $cfg many-client pull got $got bytes, expected $bytes"
  rm -f "$W/out"/client.*
}

# ------------------------------------------------------------------ docker ---
# One private Docker Engine for the docker-* configurations (started on first use).
DOCKER_REPO=bench/app   # local name of the loaded images
start_dockerd() {
  [ -n "$DOCKERD_PID" ] && return 0
  DOCKER_DIR=$(mktemp -d /tmp/bs-bench-docker.XXXX)   # short: the socket path must fit in sun_path
  dockerd --data-root "$DOCKER_DIR/root" --exec-root "$DOCKER_DIR/exec" --pidfile "$DOCKER_DIR/dockerd.pid" \
    -H "unix://$DOCKER_DIR/docker.sock" --iptables=false --ip6tables=false --bridge=none \
    --storage-driver=overlay2 > "$DOCKER_DIR/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  export DOCKER_HOST=unix://$DOCKER_DIR/docker.sock DOCKER_BUILDKIT=0 DOCKER_CONFIG=$DOCKER_DIR/client
  local i
  for i in $(seq 1 300); do
    kill -0 "$DOCKERD_PID" 2>/dev/null || { tail -n 20 "$DOCKER_DIR/dockerd.log" >&2; die "dockerd exited during start-up"; }
    docker version >/dev/null 2>&1 && break
    sleep 0.1
  done
  docker version >/dev/null 2>&1 || { tail -n 20 "$DOCKER_DIR/dockerd.log" >&2; die "dockerd not ready after 30 s"; }
  extra docker.version "engine $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})'), client $(docker version --format '{{.Client.Version}}')"
  log "dockerd pid $DOCKERD_PID, $DOCKER_HOST"
}
docker_load() { # the plain layout's v1 and v2 as a docker-archive piped into `docker load`
  "$PY" - "$W/layouts/plain" "$DOCKER_REPO" <<'EOF' | docker load -q >&2 || die "docker load failed"
import io, json, os, sys, tarfile
layout, repo = sys.argv[1:3]
blob = lambda d: os.path.join(layout, "blobs", "sha256", d.split(":")[1])
out = tarfile.open(fileobj=sys.stdout.buffer, mode="w|")
added, entries = set(), []
def add_file(name, path):
    if name not in added: added.add(name); out.add(path, arcname=name, recursive=False)
for m in json.load(open(os.path.join(layout, "index.json")))["manifests"]:
    man = json.load(open(blob(m["digest"])))
    cfg = man["config"]["digest"].split(":")[1] + ".json"
    add_file(cfg, blob(man["config"]["digest"]))
    layers = []
    for l in man["layers"]:
        name = l["digest"].split(":")[1] + "/layer.tar"
        add_file(name, blob(l["digest"])); layers.append(name)
    entries.append({"Config": cfg, "RepoTags": [repo + ":" + m["annotations"]["org.opencontainers.image.ref.name"]],
                    "Layers": layers})
data = json.dumps(entries).encode()
ti = tarfile.TarInfo("manifest.json"); ti.size = len(data)
out.addfile(ti, io.BytesIO(data))
out.close()
EOF
}
docker_wipe() { # remove every image and layer from the engine
  local ids left
  ids=$(docker image ls -aq | sort -u)
  # shellcheck disable=SC2086
  [ -z "$ids" ] || docker rmi -f $ids > /dev/null || die "docker rmi failed"
  docker image prune -a -f > /dev/null || die "docker image prune failed"
  [ -z "$(docker image ls -aq)" ] || die "images left in the engine after rmi and prune"
  left=$(find "$DOCKER_DIR/root/overlay2" -mindepth 1 -maxdepth 1 ! -name l 2>/dev/null | wc -l)
  [ "$left" = 0 ] || die "$left layer dirs left in the engine's overlay2 after rmi and prune"
}
docker_check() { # docker_check CONFIG TAG : the engine's image has the corpus layers and the OCI config
  local ref=127.0.0.1:$SRV_PORT/$REPO_NAME:$1 want got
  want=$(awk -F'\t' -v t="$1" '$1==t && $2=="config" {printf "sha256:%s", $3} $1==t && $2 ~ /^layer:/ {printf " sha256:%s", $3}' \
    "$W/layouts/plain/blobs.tsv")
  got=$(docker image inspect "$ref" --format '{{.Id}}{{range .RootFS.Layers}} {{.}}{{end}}' 2>/dev/null || true)
  [ "$got" = "$want" ] || log "WARNING: pulled $ref has '$got', expected '$want'"
}
docker_wire() { # docker_wire CONFIG TAG : gzip bytes docker moved, from the pushed manifests
  curl -sS --fail -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://127.0.0.1:$SRV_PORT/v2/$REPO_NAME/manifests/$2" > "$W/out/$1.manifest.$2.json" \
    || die "$1: cannot GET the manifest of $2"
  "$PY" - "$1" "$2" "$W/out" >> "$WIRE" <<'EOF'
import json, os, sys
cfg, tag, out = sys.argv[1:4]
def blobs(t):
    m = json.load(open(os.path.join(out, "%s.manifest.%s.json" % (cfg, t))))
    return {d["digest"]: d["size"] for d in [m["config"]] + m["layers"]}
cur = blobs(tag)
seen = blobs("v1") if tag == "v2" else {}
new = sum(s for d, s in cur.items() if d not in seen)
print("%s\tpush_%s\t%d" % (cfg, tag, new))
print("%s\tpull_%s\t%d" % (cfg, tag, new))   # pull v2 follows pull v1: only the new blobs move
EOF
  extra "docker_layers.$1.$2" "$("$PY" -c 'import json,sys; m=json.load(open(sys.argv[1])); print(" ".join("%s:%d" % (l["digest"][7:19], l["size"]) for l in m["layers"]))' "$W/out/$1.manifest.$2.json")"
}
run_docker_config() { # run_docker_config CONFIG
  local cfg=$1 tag ref
  start_dockerd
  docker_wipe
  log "$cfg: docker load of v1 and v2 (untimed)"
  docker_load
  start_server "$cfg"
  [ "$SRV_KIND" = blobstore ] && [ -s "$SRV_DATA/config.json" ] \
    && extra "store_config.$cfg" "$(tr -d ' \n' < "$SRV_DATA/config.json")"
  CLIENT_DAEMON_PID=$DOCKERD_PID
  for tag in v1 v2; do
    ref=127.0.0.1:$SRV_PORT/$REPO_NAME:$tag
    docker tag "$DOCKER_REPO:$tag" "$ref" || die "docker tag failed"
    step "$cfg" "push_$tag" "$(bytes_of plain "$tag" new raw)" "$(bytes_of plain "$tag" new raw)" \
      docker push -q "$ref" || die "$cfg: docker push of $tag failed"
    docker_wire "$cfg" "$tag"
    size_of "$cfg" "stored_$tag" "$SRV_DATA"; [ "$SRV_KIND" = blobstore ] && blob_df "$cfg" "$tag"
  done
  docker_wipe   # the pulls below must download every layer
  for tag in v1 v2; do
    ref=127.0.0.1:$SRV_PORT/$REPO_NAME:$tag
    step "$cfg" "pull_$tag" "$(bytes_of plain "$tag" new raw)" "$(bytes_of plain "$tag" new raw)" \
      docker pull -q "$ref" || die "$cfg: docker pull of $tag failed"
    docker_check "$tag"
  done
  CLIENT_DAEMON_PID=
  docker_wipe
  stop_server
  grep -E ' (error|critical) |level=(error|fatal|panic)' "$W/srv-$cfg/server.log" \
    | grep -vE 'err.code="(blob|manifest) unknown"' | head -n 5 \
    | sed "s/^/[rbench] $cfg server log: /" >&2 || true
  rm -rf "$W/srv-$cfg"
}

# wait_settled CONFIG: blobstore only. Waits (up to SETTLE_WAIT s) until the server's
# own settler, which starts once no request came for its idle time (60 s by default),
# has nothing left to settle (`settle --dry-run` from outside finds no pack), then
# records stored_settled and how long it took from the last request.
wait_settled() {
  [ "$SRV_KIND" = blobstore ] && [ "$SETTLE_WAIT" -gt 0 ] && [ "$REP" = 1 ] || return 0
  local t0 packs="" j
  t0=$(date +%s)
  log "$1: waiting for the server's settler (idle ${SETTLE_IDLE}s first)"
  while [ $(( $(date +%s) - t0 )) -lt "$SETTLE_WAIT" ]; do
    sleep 5
    j=$("$BLOBCTL" --store "$SRV_DATA" settle --dry-run --json 2>/dev/null) || continue
    packs=$(printf '%s' "$j" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["packs"])') || continue
    [ "$packs" = 0 ] && break
  done
  if [ "$packs" = 0 ]; then
    extra "settled_after_s.$1" "$(( $(date +%s) - t0 ))"
    size_of "$1" stored_settled "$SRV_DATA"; blob_df "$1" settled
  else
    log "$1: still $packs packs to settle after ${SETTLE_WAIT}s"
  fi
}

# -------------------------------------------------------------- the suite ---
run_config() { # run_config CONFIG
  local cfg=$1 layout=plain
  [[ "$cfg" == *-gz ]] && layout=gzip
  start_server "$cfg"
  [ "$SRV_KIND" = blobstore ] && [ -s "$SRV_DATA/config.json" ] \
    && extra "store_config.$cfg" "$(tr -d ' \n' < "$SRV_DATA/config.json")"
  push "$cfg" "$layout" v1
  size_of "$cfg" stored_v1 "$SRV_DATA"; [ "$SRV_KIND" = blobstore ] && blob_df "$cfg" v1
  push "$cfg" "$layout" v2
  size_of "$cfg" stored_v2 "$SRV_DATA"; [ "$SRV_KIND" = blobstore ] && blob_df "$cfg" v2
  pull "$cfg" "$layout" v1
  pull "$cfg" "$layout" v2
  if [ "$cfg" = blobstore ] || [ "$cfg" = registry ]; then many_clients "$cfg" "$layout" v1; fi
  wait_settled "$cfg"
  stop_server
  # server-side errors, without docker-registry's 404s for HEADs of blobs not pushed yet
  grep -E ' (error|critical) |level=(error|fatal|panic)' "$W/srv-$cfg/server.log" \
    | grep -vE 'err.code="(blob|manifest) unknown"' | head -n 5 \
    | sed "s/^/[rbench] $cfg server log: /" >&2 || true
  rm -rf "$W/srv-$cfg"
}

START=$(date +%s)
b0=$(cpu_busy_ticks); sleep 1; b1=$(cpu_busy_ticks)
if [ $(( (b1 - b0) * 4 )) -gt $(( CLK_TCK * $(nproc) )) ]; then
  log "WARNING: the machine is $(( (b1 - b0) * 100 / CLK_TCK / $(nproc) ))% busy before the start; other work will distort the figures"
fi
make_layouts
extra skopeo.version "$(skopeo --version)"
[ -n "$REGISTRY_BIN" ] && extra registry.version "$("$REGISTRY_BIN" --version 2>&1 | head -n 1)"
extra gzip "$GZIP_CMD -n -6"
for lay in plain gzip; do
  [ -s "$W/layouts/$lay/blobs.tsv" ] || continue
  for t in v1 v2; do
    extra "bytes.$lay.$t.all" "$(bytes_of "$lay" "$t" all wire)"
    extra "bytes.$lay.$t.new" "$(bytes_of "$lay" "$t" new wire)"
  done
done
for REP in $(seq 1 "$REPEAT"); do
  [ "$REPEAT" -gt 1 ] && REPEAT_TAG=" (run $REP/$REPEAT)"
  for cfg in blobstore registry registry-zstd blobstore-gz registry-gz; do
    want "$cfg" && run_config "$cfg"
  done
  for cfg in docker-blobstore docker-registry; do
    want "$cfg" && run_docker_config "$cfg"
  done
done
extra elapsed_s "$(( $(date +%s) - START ))"
extra cores "$(nproc)"
extra repeat "$REPEAT"
extra settle_idle "$SETTLE_IDLE"
extra clients "$CLIENTS x $CLIENT_PARALLEL"

# ------------------------------------------------------------------ report ---
PYTHONIOENCODING=utf-8 "$PY" - "$RES" "$SIZES" "$EXTRA" "${OUT_JSON:-}" "$CORPUS" "$WIRE" <<'EOF'
import json, sys
res_f, sizes_f, extra_f, out_json, corpus, wire_f = sys.argv[1:7]
wire_of = {}
for line in open(wire_f):
    c, p, v = line.rstrip("\n").split("\t")
    wire_of[(c, p)] = int(v)
extra = dict(line.rstrip("\n").split("\t", 1) for line in open(extra_f))
all_runs = {}
for line in open(res_f):
    cfg, phase, wall, cu, cs, crss, srv, hwm, nbytes, wire, rep, other, anon, filek = line.rstrip("\n").split("\t")
    wall = float(wall); nbytes = int(nbytes); wire = wire_of.get((cfg, phase), int(wire))
    all_runs.setdefault((cfg, phase), []).append(dict(
        wall_s=wall, client_cpu_s=round(float(cu) + float(cs), 2), client_rss_mib=round(int(crss) / 1024, 1),
        server_cpu_s=float(srv), server_peak_rss_mib=round(int(hwm) / 1024, 1), bytes=nbytes, wire_bytes=int(wire),
        run=int(rep), other_cpu_s=float(other), mb_per_s=round(nbytes / 1e6 / wall, 1) if wall > 0 else None,
        wire_mb_per_s=round(int(wire) / 1e6 / wall, 1) if wall > 0 else None,
        server_rss_anon_mib_after=round(int(anon) / 1024, 1), server_rss_file_mib_after=round(int(filek) / 1024, 1)))
runs = {}
for k, lst in all_runs.items():
    best = dict(min(lst, key=lambda r: r["wall_s"]))
    best["runs"] = len(lst); best["worst_wall_s"] = max(r["wall_s"] for r in lst)
    best["server_peak_rss_mib"] = max(r["server_peak_rss_mib"] for r in lst)
    runs[k] = best
sizes = {}
for line in open(sizes_f):
    cfg, metric, v = line.rstrip("\n").split("\t")
    sizes.setdefault(cfg, {})[metric] = int(v)
ncores = int(extra.get("cores", "1"))

def fmt(v, nd=1):
    if v is None: return "n/a"
    return f"{v:,.{nd}f}"
def ratio(a, b):
    return round(a / b, 3) if (a is not None and b) else None
def combined(cfg, phases):
    rs = [runs.get((cfg, p)) for p in phases]
    if not all(rs): return None
    return round(sum(r["bytes"] for r in rs) / 1e6 / sum(r["wall_s"] for r in rs), 1)
def total(cfg, phases, key):
    rs = [runs.get((cfg, p)) for p in phases]
    return round(sum(r[key] for r in rs), 2) if all(rs) else None
def peak(cfg):
    rs = [r for (c, _), r in runs.items() if c == cfg]
    return max(r["server_peak_rss_mib"] for r in rs) if rs else None

configs = [c for c in ["blobstore", "registry", "registry-zstd", "blobstore-gz", "registry-gz",
                       "docker-blobstore", "docker-registry"]
           if any(k[0] == c for k in runs)]
labels = {"blobstore": "blobstore", "registry": "docker-registry", "registry-zstd": "docker-registry zstd",
          "blobstore-gz": "blobstore, gzip layers", "registry-gz": "docker-registry, gzip",
          "docker-blobstore": "docker\u2192blobstore", "docker-registry": "docker\u2192registry"}
PUSH, PULL = ["push_v1", "push_v2"], ["pull_v1", "pull_v2"]
table = {}
for c in configs:
    st = sizes.get(c, {})
    table[c] = dict(push_mb_per_s=combined(c, PUSH), pull_mb_per_s=combined(c, PULL),
                    many_mb_per_s=(runs.get((c, "many_v1")) or {}).get("mb_per_s"),
                    server_cpu_push_s=total(c, PUSH, "server_cpu_s"), server_cpu_pull_s=total(c, PULL, "server_cpu_s"),
                    server_cpu_many_s=(runs.get((c, "many_v1")) or {}).get("server_cpu_s"),
                    server_peak_rss_mib=peak(c), stored_v1_bytes=st.get("stored_v1"), stored_v2_bytes=st.get("stored_v2"),
                    stored_settled_bytes=st.get("stored_settled"))

b = lambda k: extra.get(k)
print()
if b("bytes.plain.v1.all"):
    print(f"Images: v1 {int(b('bytes.plain.v1.all'))/1e6:,.1f} MB (base, app-v1, small), v2 {int(b('bytes.plain.v2.all'))/1e6:,.1f} MB "
          f"(base, app-v2, small-v2; {int(b('bytes.plain.v2.new'))/1e6:,.1f} MB new)"
          + (f"; gzip: v1 {int(b('bytes.gzip.v1.all'))/1e6:,.1f} MB, v2 {int(b('bytes.gzip.v2.all'))/1e6:,.1f} MB" if b("bytes.gzip.v1.all") else "")
          + f"; {ncores} cores; many-client = {extra.get('clients')} blobs at a time, image v1")
hdr = (f"{'':<24}{'push MB/s':>10}{'pull MB/s':>10}{'8-client':>10}{'srv CPU s':>10}{'srv CPU s':>10}{'srv CPU s':>10}"
       f"{'srv peak':>10}{'stored':>10}{'stored':>10}")
hdr2 = (f"{'':<24}{'v1+v2':>10}{'v1+v2':>10}{'MB/s':>10}{'push':>10}{'pull':>10}{'8-client':>10}"
        f"{'RSS MiB':>10}{'v1 MB':>10}{'v2 MB':>10}")
print(hdr); print(hdr2); print("-" * len(hdr))
for c in configs:
    t = table[c]
    print(f"{labels[c]:<24}{fmt(t['push_mb_per_s']):>10}{fmt(t['pull_mb_per_s']):>10}{fmt(t['many_mb_per_s']):>10}"
          f"{fmt(t['server_cpu_push_s'], 2):>10}{fmt(t['server_cpu_pull_s'], 2):>10}{fmt(t['server_cpu_many_s'], 2):>10}"
          f"{fmt(t['server_peak_rss_mib']):>10}{fmt(t['stored_v1_bytes'] and t['stored_v1_bytes']/1e6):>10}"
          f"{fmt(t['stored_v2_bytes'] and t['stored_v2_bytes']/1e6):>10}")
ratios = {}
for a, bb in [("blobstore", "registry"), ("blobstore", "registry-zstd"), ("blobstore-gz", "registry-gz"),
              ("docker-blobstore", "docker-registry")]:
    if a in table and bb in table:
        r = {k: ratio(table[a][k], table[bb][k]) for k in
             ("push_mb_per_s", "pull_mb_per_s", "many_mb_per_s", "server_cpu_push_s", "server_cpu_pull_s",
              "server_cpu_many_s", "server_peak_rss_mib", "stored_v1_bytes", "stored_v2_bytes")}
        ratios[f"{a}/{bb}"] = r
        rl = "ratio docker b/reg" if a.startswith("docker-") else "ratio " + a.replace('blobstore', 'b') + '/' + bb.replace('registry', 'reg')
        print(f"{rl:<24}"
              + "".join(f"{fmt(r[k], 2):>10}" for k in r))
print("(MB/s: uncompressed image bytes / wall, gzip bytes for the gzip rows; push v2 counts only blobs new in v2;"
      " stored = du -sb of the data dir)")
for c in configs:
    if table[c]["stored_settled_bytes"]:
        reg = table.get("registry", {}).get("stored_v2_bytes")
        print(f"{labels[c]}: stored after the server's own settler {table[c]['stored_settled_bytes']/1e6:,.1f} MB"
              + (f" ({table[c]['stored_settled_bytes']/reg:.2f}x docker-registry's)" if reg else "")
              + f", done {extra.get('settled_after_s.' + c, '?')} s after the last request (it starts after {extra.get('settle_idle', '?')} s idle)")
if any(c.startswith("docker-") for c in configs):
    print("(docker rows: dockerd pushes and pulls; MB/s over uncompressed bytes too; pull v2 follows pull v1 in the"
          " same engine, so it counts only the blobs v1 lacked)")
def wire_mbs(cfg, phases):
    rs = [runs.get((cfg, p)) for p in phases]
    return round(sum(r["wire_bytes"] for r in rs) / 1e6 / sum(r["wall_s"] for r in rs), 1) if all(rs) else None
for c in configs:
    table[c]["push_wire_mb_per_s"] = wire_mbs(c, PUSH); table[c]["pull_wire_mb_per_s"] = wire_mbs(c, PULL)
if "registry-zstd" in table:
    rz = table["registry-zstd"]
    print(f"(docker-registry zstd moves zstd bytes: push {fmt(rz['push_wire_mb_per_s'])}, pull {fmt(rz['pull_wire_mb_per_s'])}"
          " MB/s of compressed data; skopeo stores them into the oci: layout without decompressing)")
def docker_gz(cfg, tag):
    v = extra.get("docker_layers.%s.%s" % (cfg, tag))
    return None if v is None else [(x.split(":")[0], int(x.split(":")[1])) for x in v.split()]
for c in [c for c in configs if c.startswith("docker-")]:
    t = table[c]; g1, g2 = docker_gz(c, "v1"), docker_gz(c, "v2")
    sz = lambda g: sum(s for _, s in g) / 1e6 if g else None
    print(f"({labels[c]}: gzip bytes on the wire: push {fmt(t['push_wire_mb_per_s'])}, pull {fmt(t['pull_wire_mb_per_s'])} MB/s;"
          f" docker's gzip layers: v1 {fmt(sz(g1))} MB, v2 {fmt(sz(g2))} MB)")
if all(docker_gz(c, t) for c in ("docker-blobstore", "docker-registry") for t in ("v1", "v2")):
    same = all(docker_gz("docker-blobstore", t) == docker_gz("docker-registry", t) for t in ("v1", "v2"))
    print("(docker pushed %s gzip layer digests to both servers)" % ("the same" if same else "DIFFERENT"))
bs = sizes.get("blobstore", {})
if any(k.startswith("df_") for k in bs):
    print("blobctl df (blobstore, after v2): " + ", ".join(f"{k[3:-3]}={v/1e6:,.1f} MB" for k, v in sorted(bs.items())
                                                       if k.startswith("df_") and k.endswith("_v2")))
for c in ("blobstore-gz", "docker-blobstore"):
    gz = sizes.get(c, {})
    if any(k.startswith("df_") for k in gz):
        print(f"blobctl df ({c}, after v2): " + ", ".join(f"{k[3:-3]}={v/1e6:,.1f} MB" for k, v in sorted(gz.items())
                                                         if k.startswith("df_") and k.endswith("_v2")))

print()
rep_note = f" (best of {extra.get('repeat')} runs)" if extra.get("repeat", "1") != "1" else ""
print("Per step" + rep_note + ": wall, MB/s, server CPU s and peak RSS, client CPU s (docker rows: CLI + dockerd);"
      " 'other CPU' = CPU used by other processes")
hdr = (f"{'config':<17}{'step':<9}{'MB':>9}{'wall s':>8}{'MB/s':>9}{'srv CPU':>9}{'srv RSS':>9}{'cli CPU':>9}"
       f"{'other CPU':>10}" + (f"{'worst s':>9}" if rep_note else ""))
print(hdr); print("-" * len(hdr))
disturbed = []
for (c, p), r in runs.items():
    flag = r["other_cpu_s"] > 0.1 * ncores * max(r["wall_s"], 0.1)
    if flag: disturbed.append(f"{c} {p}")
    print(f"{c:<17}{p:<9}{r['bytes']/1e6:>9,.1f}{r['wall_s']:>8.2f}{fmt(r['mb_per_s']):>9}{r['server_cpu_s']:>9.2f}"
          f"{r['server_peak_rss_mib']:>9.1f}{r['client_cpu_s']:>9.2f}{r['other_cpu_s']:>9.2f}{'!' if flag else ' '}"
          + (f"{r['worst_wall_s']:>9.2f}" if rep_note else ""))
if disturbed:
    print("WARNING: other processes used >10% of the machine during: " + ", ".join(disturbed)
          + " -- rerun on an idle machine (or with REPEAT=3).")

def check(name, value, limit, op, nd=1):
    if value is None or limit is None:
        return dict(target=name, value=value, limit=limit, result="n/a")
    ok = value >= limit if op == ">=" else value <= limit
    return dict(target=name, value=round(value, 3), limit=round(limit, 3), result="PASS" if ok else "FAIL")
T = lambda c, k: table.get(c, {}).get(k)
mul = lambda f, v: None if v is None else f * v
mb = lambda v: None if v is None else v / 1e6
targets = [
    check("push >= 1.0x docker-registry (MB/s)", T("blobstore", "push_mb_per_s"), T("registry", "push_mb_per_s"), ">="),
    check("pull >= 1.0x docker-registry (MB/s)", T("blobstore", "pull_mb_per_s"), T("registry", "pull_mb_per_s"), ">="),
    check("pull >= 1.2x docker-registry (MB/s)", T("blobstore", "pull_mb_per_s"), mul(1.2, T("registry", "pull_mb_per_s")), ">="),
    check("stored v2 <= 0.3x docker-registry (MB)", mb(T("blobstore", "stored_v2_bytes")), mul(0.3, mb(T("registry", "stored_v2_bytes"))), "<="),
    check("settled v2 <= 0.3x docker-registry (MB)", mb(T("blobstore", "stored_settled_bytes")), mul(0.3, mb(T("registry", "stored_v2_bytes"))), "<="),
    check("push >= 2x docker-registry zstd (MB/s)", T("blobstore", "push_mb_per_s"), mul(2, T("registry-zstd", "push_mb_per_s")), ">="),
    check("pull >= 2x docker-registry zstd (MB/s)", T("blobstore", "pull_mb_per_s"), mul(2, T("registry-zstd", "pull_mb_per_s")), ">="),
    check("stored v2 <= 0.95x docker-registry zstd (MB)", mb(T("blobstore", "stored_v2_bytes")), mul(0.95, mb(T("registry-zstd", "stored_v2_bytes"))), "<="),
    check("8-client pull >= 1.0x docker-registry (MB/s)", T("blobstore", "many_mb_per_s"), T("registry", "many_mb_per_s"), ">="),
    check("gzip layers: stored v2 <= docker-registry (MB)", mb(T("blobstore-gz", "stored_v2_bytes")), mb(T("registry-gz", "stored_v2_bytes")), "<="),
]
print()
print("Targets")
for t in targets:
    print(f"  [{t['result']:>4}] {t['target']:<48} value {fmt(t['value'], 2)}  limit {fmt(t['limit'], 2)}")
def store_note():
    try:
        c = json.loads(extra.get("store_config.blobstore") or extra.get("store_config.blobstore-gz")
                       or extra.get("store_config.docker-blobstore"))
        ch = c["chunking"]
        return "chunks %d/%d/%d bytes, zstd level %s" % (ch["minSize"], ch["averageSize"], ch["maxSize"], c["compressionLevel"])
    except Exception:
        return "config unknown"
notes = [
    "skopeo %s, --preserve-digests (layers go as they are) except the zstd push (--dest-compress-format zstd, "
    "compressed by skopeo on the client, inside the push time); pulls go to a fresh oci: layout "
    "(--dest-oci-accept-uncompressed-layers)." % extra.get("skopeo.version", "?").split()[-1],
    "docker-registry: %s, filesystem driver, inmemory blob descriptor cache, no auth, run by hand."
    % extra.get("registry.version", "?"),
    "docker: %s; a private dockerd (overlay2), images docker-loaded from the plain layout (untimed), pushed with "
    "`docker push` (dockerd gzips the layers), all images removed and pruned, then `docker pull` v1 and v2 "
    "(download, gunzip and extraction into overlay2 inside the pull time)." % extra.get("docker.version", "?"),
    "blobctl: %s; store %s." % (extra.get("blobctl", "?"), store_note()),
    "server and clients share the machine's %d cores; client CPU (skopeo hashing, curl) is in the per-step table; "
    "'other CPU' also holds kernel work no process is charged for (page writeback, loopback softirqs)." % ncores,
    "each step runs %s; the page cache is not dropped." % ("once" if extra.get("repeat", "1") == "1"
                                                          else "%s times (fresh servers), best shown" % extra["repeat"]),
]
print()
notes = [n for n in notes if not (n.startswith("docker-registry: ?") or n.startswith("blobctl: ?")
                                  or n.startswith("docker: ?"))]
for n in notes: print("note: " + n)
out = dict(corpus=corpus, runs={f"{c}.{p}": v for (c, p), v in runs.items()},
           all_runs={f"{c}.{p}": v for (c, p), v in all_runs.items()}, sizes=sizes, table=table, ratios=ratios,
           targets=targets, disturbed_steps=disturbed, notes=notes, extra=extra)
if out_json:
    with open(out_json, "w") as fh: json.dump(out, fh, indent=2)
    print(f"\nJSON written to {out_json}")
EOF
log "done in $(( $(date +%s) - START )) s"

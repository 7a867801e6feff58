#!/usr/bin/env bash
# bench/volume-bench.sh
#
# Docker volume benchmark: Docker's built-in `local` volume driver against the
# blobstore volume plugin (`blobctl volume-plugin`), in the same run, with one
# private Docker Engine (Debian docker.io). A local volume is a plain directory
# in dockerd's data root. A blobstore volume is a directory under
# STORE/volume-work/<vol>/data; when the last container using it stops
# (VolumeDriver.Unmount) the plugin archives the directory into the store as the
# volume's next snapshot (content-defined chunks, zstd, deduplicated), so that
# unmount is where a blobstore volume's version is recorded.
#
# Steps, each timed as the wall of the docker CLI command(s) (date +%s%N around
# them; every `docker run --rm` returns after the container is removed, i.e.
# after its volumes were unmounted):
#   1. `docker volume create` + `docker run --rm ... true` on the empty volume
#   2. one container writes SIZE_MIB MiB from /dev/urandom to /data/blob
#      (busybox dd bs=1M, no sync inside the container)
#   3. RUNS containers, each overwriting CHANGE_PCT % of /data/blob in place at a
#      random 1 MiB-aligned offset (busybox dd if=/dev/urandom bs=1M count=N
#      seek=OFF conv=notrunc); min / median / max. Both drivers get the same
#      offsets (seeded by SEED); the runs alternate which driver goes first.
#   4. `docker run --rm ... true` with the SIZE_MIB volume, median of 5
#   6. CONC containers at once, each on a volume of its own created just before
#      it (`docker volume create` + `docker run --rm` writing CONC_MIB MiB), CONC_ROUNDS
#      rounds per driver: wall of each round; for blobstore also the latency of
#      every plugin call in those rounds (the plugin logs each call's duration),
#      p50 / p99 / max per call type: Docker blocks on each of them.
#   5. bytes on disk after all runs: local = du -sb of the volume's _data;
#      blobstore = storedBytes of `blobctl df --json` before and after
#      `blobctl gc`, and du -sb of the store dir (which also holds the working
#      copy under volume-work/).
# An untimed `sync` runs before every timed command, so writeback left by one
# step is not charged to the next. Afterwards the volume's snapshot is exported
# from the store (untimed) and its blob compared with the working copy, and the
# plugin's log lines, warnings and errors are counted.
#
# The private dockerd (data root, exec root and socket in a mktemp dir under
# /tmp; --bridge=none, no iptables, overlay2, its own DOCKER_CONFIG) and the
# plugin (socket /run/docker/plugins/<driver>.sock; driver name unique per run)
# are stopped with SIGTERM on exit and their directories removed. Containers run
# `--network none` from an image imported from a root file system holding only
# a static busybox.
#
# Environment:
#   SIZE_MIB=N       volume file size in MiB (default 1024)
#   RUNS=N           overwrite runs (default 10)
#   CHANGE_PCT=P     share of the file each run overwrites, in percent (default 1;
#                    rounded up to whole MiB, at least 1 MiB)
#   START_RUNS=N     runs of step 4 (default 5)
#   CONC=N           containers started at once in step 6 (default 8)
#   CONC_MIB=N       MiB each of them writes (default 64)
#   CONC_ROUNDS=N    rounds of step 6 per driver (default 3)
#   SEED=N           seed of the overwrite offsets (default 1)
#   BLOBCTL=PATH     blobctl binary (default REPO/.build/release/blobctl; this
#                    script does not build it); a private copy is run
#   BUSYBOX=PATH     static busybox for the image (default: command -v busybox)
#   OUT_JSON=FILE    also write all figures as JSON to FILE
#   BENCH_TMPDIR=DIR parent of the scratch dir holding the store (default
#                    /work/tmp-bench if /work exists, else ${TMPDIR:-/tmp});
#                    removed at the end unless KEEP=1
#   PLUGIN_LOG=FILE  where the plugin's log is kept (default /tmp/volume-bench-plugin.log)
set -euo pipefail
export LC_ALL=C

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)
SIZE_MIB=${SIZE_MIB:-1024}
RUNS=${RUNS:-10}
CHANGE_PCT=${CHANGE_PCT:-1}
START_RUNS=${START_RUNS:-5}
CONC=${CONC:-8}
CONC_MIB=${CONC_MIB:-64}
CONC_ROUNDS=${CONC_ROUNDS:-3}
SEED=${SEED:-1}
KEEP=${KEEP:-0}
PLUGIN_LOG=${PLUGIN_LOG:-/tmp/volume-bench-plugin.log}

log() { printf '[vbench] %s\n' "$*" >&2; }
die() { printf '[vbench] ERROR: %s\n' "$*" >&2; exit 1; }
. "$SCRIPT_DIR/lib.sh" # ensure, scratch_parent, stop_pid

[[ "$SIZE_MIB" =~ ^[1-9][0-9]*$ ]] || die "SIZE_MIB must be a positive integer"
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer"
[[ "$START_RUNS" =~ ^[1-9][0-9]*$ ]] || die "START_RUNS must be a positive integer"
[[ "$CHANGE_PCT" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "CHANGE_PCT must be a number"
[ "$(id -u)" = 0 ] || die "needs root (dockerd, /run/docker/plugins)"

ensure python3 python3-minimal
ensure dockerd docker.io
ensure docker docker.io
BUSYBOX=${BUSYBOX:-$(command -v busybox || true)}
[ -n "$BUSYBOX" ] || { ensure busybox busybox-static; BUSYBOX=$(command -v busybox); }
file -L "$BUSYBOX" 2>/dev/null | grep -q 'statically linked' || log "warning: $BUSYBOX may not be static"

BLOBCTL=${BLOBCTL:-$REPO_DIR/.build/release/blobctl}
[ -x "$BLOBCTL" ] || die "no blobctl at $BLOBCTL (build it with swift build -c release --product blobctl, or set BLOBCTL)"
BLOBCTL=$(realpath "$BLOBCTL")

# Changed MiB per run and the offsets (same for both drivers).
CHANGE_MIB=$(python3 -c "import math,sys; print(max(1, math.ceil($SIZE_MIB * $CHANGE_PCT / 100)))")
[ "$CHANGE_MIB" -le "$SIZE_MIB" ] || die "CHANGE_PCT=$CHANGE_PCT exceeds the file"
OFFSETS=($(python3 -c "import random; r = random.Random($SEED); print(' '.join(str(r.randint(0, $SIZE_MIB - $CHANGE_MIB)) for _ in range($RUNS)))"))

# ------------------------------------------------------------- scratch dirs ---
PARENT=$(scratch_parent)
W=$(mktemp -d "$PARENT/volume-bench.XXXXXX")
STORE=$W/store
D=$(mktemp -d /tmp/bs-vbench.XXXX)
DRIVER=bsvbench$$
SOCK=/run/docker/plugins/$DRIVER.sock
DOCKERD_PID=; PLUGIN_PID=
IMAGE=vbench-base:1
VOL_L=vbench-local; VOL_B=vbench-blob
RES=$W/results.tsv; : > "$RES"   # driver step value
rec() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$RES"; }

cleanup() {
  local rc=$?
  stop_pid "$DOCKERD_PID" 30
  if [ -d "$D" ]; then
    awk -v d="$D/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
    rm -rf "$D" 2>/dev/null || log "could not remove $D completely"
  fi
  stop_pid "$PLUGIN_PID" 30
  rm -f "$SOCK"
  if [ "$KEEP" = 1 ]; then log "kept scratch dir $W"; else rm -rf "$W"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cp "$BLOBCTL" "$W/blobctl"
BC=$W/blobctl
BLOBCTL_ID="$BLOBCTL ($(stat -c '%y' "$BLOBCTL" | cut -d. -f1), sha256 $(sha256sum "$BLOBCTL" | cut -c1-12))"
log "scratch $W, docker dir $D, driver $DRIVER, blobctl $BLOBCTL_ID"
log "SIZE_MIB=$SIZE_MIB RUNS=$RUNS CHANGE_PCT=$CHANGE_PCT ($CHANGE_MIB MiB per run) offsets(MiB): ${OFFSETS[*]}"

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
# --------------------------------------------------------- plugin + dockerd ---
"$BC" init --store "$STORE" >&2
mkdir -p /run/docker/plugins
[ -e "$SOCK" ] && die "$SOCK exists"
"$BC" volume-plugin --store "$STORE" --socket "$SOCK" 2> "$PLUGIN_LOG" &
PLUGIN_PID=$!
for i in $(seq 1 100); do [ -S "$SOCK" ] && break; kill -0 "$PLUGIN_PID" 2>/dev/null || die "plugin exited: $(tail -5 "$PLUGIN_LOG")"; sleep 0.1; done
[ -S "$SOCK" ] || die "plugin socket $SOCK did not appear"

dockerd --data-root "$D/root" --exec-root "$D/exec" --pidfile "$D/dockerd.pid" -H "unix://$D/docker.sock" \
  --iptables=false --ip6tables=false --bridge=none --storage-driver=overlay2 > "$D/dockerd.log" 2>&1 &
DOCKERD_PID=$!
export DOCKER_HOST=unix://$D/docker.sock DOCKER_CONFIG=$D/config
mkdir -p "$DOCKER_CONFIG"
for i in $(seq 1 300); do docker info >/dev/null 2>&1 && break; kill -0 "$DOCKERD_PID" 2>/dev/null || die "dockerd exited: $(tail -5 "$D/dockerd.log")"; sleep 0.1; done
docker info >/dev/null 2>&1 || die "dockerd did not come up: $(tail -5 "$D/dockerd.log")"
DOCKER_VERSION=$(docker version --format '{{.Server.Version}}')

mkdir -p "$W/rootfs/bin" "$W/rootfs/tmp" "$W/rootfs/data"
cp "$BUSYBOX" "$W/rootfs/bin/busybox"
for a in sh head dd cat sync true ls stat sha256sum; do ln -s busybox "$W/rootfs/bin/$a"; done
tar -C "$W/rootfs" -c . | docker import - "$IMAGE" >/dev/null
RUNLOG=$W/docker-run.log; : > "$RUNLOG"   # stderr of the docker commands (dd prints its record counts)
run() { docker run --rm --network none "$@" >/dev/null 2>> "$RUNLOG"; }
vcreate() { docker volume create "$@" >/dev/null 2>> "$RUNLOG"; }
run "$IMAGE" true   # warm the image once, untimed

# ----------------------------------------------------------------- timing ---
# timed DRIVER STEP CMD...: untimed sync, then wall seconds of CMD into the results.
# Also records the plugin's CPU seconds (utime+stime of its process) and the
# machine's busy CPU seconds (/proc/stat: all but idle and iowait) during CMD.
HZ=$(getconf CLK_TCK)
plugin_ticks() { awk '{ print $14 + $15 }' "/proc/$PLUGIN_PID/stat"; }
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
timed() {
  local drv=$1 step=$2 t0 t1 p0 p1 b0 b1; shift 2
  sync
  p0=$(plugin_ticks); b0=$(busy_ticks)
  t0=$(date +%s%N)
  "$@" || die "$drv $step failed: $* ($(tail -3 "$RUNLOG" | tr '\n' ' '))"
  t1=$(date +%s%N)
  p1=$(plugin_ticks); b1=$(busy_ticks)
  rec "$drv" "$step" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", (b - a) / 1e9 }')"
  rec "$drv" "$step.plugin_cpu" "$(awk -v a="$p0" -v b="$p1" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')"
  rec "$drv" "$step.busy_cpu" "$(awk -v a="$b0" -v b="$b1" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')"
}
vol_of() { [ "$1" = local ] && echo "$VOL_L" || echo "$VOL_B"; }
create_args() { [ "$1" = local ] && echo "-d local" || echo "-d $DRIVER"; }
both() { # both I FUNC: runs FUNC local / FUNC blobstore, order alternating with I
  if [ $(( $1 % 2 )) = 0 ]; then "$2" local; "$2" blobstore; else "$2" blobstore; "$2" local; fi
}

step1() {
  local v; v=$(vol_of "$1")
  # shellcheck disable=SC2046
  timed "$1" create vcreate $(create_args "$1") "$v"
  timed "$1" first_run run -v "$v:/data" "$IMAGE" true
}
step2() {
  timed "$1" write run -v "$(vol_of "$1"):/data" "$IMAGE" \
    dd if=/dev/urandom of=/data/blob bs=1M count="$SIZE_MIB" iflag=fullblock
}
OFF=0
PREV_SNAP=
step3() {
  timed "$1" overwrite run -v "$(vol_of "$1"):/data" "$IMAGE" \
    dd if=/dev/urandom of=/data/blob bs=1M count="$CHANGE_MIB" seek="$OFF" conv=notrunc iflag=fullblock
  if [ "$1" = blobstore ]; then # untimed: the run's unmount must have recorded a new snapshot already
    local st snap
    st=$(docker volume inspect --format '{{index .Status "mounts"}} {{index .Status "snapshot"}}' "$VOL_B")
    snap=${st#* }
    rec blobstore run_mounts_after "${st%% *}"
    if [ -n "$snap" ] && [ "$snap" != "$PREV_SNAP" ]; then rec blobstore run_new_snapshot 1; else rec blobstore run_new_snapshot 0; fi
    PREV_SNAP=$snap
  fi
}
step4() { timed "$1" start run -v "$(vol_of "$1"):/data" "$IMAGE" true; }

log "step 1: volume create + first run (empty volume)"
both 0 step1
log "step 2: write $SIZE_MIB MiB"
both 1 step2
PREV_SNAP=$(docker volume inspect --format '{{index .Status "snapshot"}}' "$VOL_B")
for i in $(seq 0 $((RUNS - 1))); do
  OFF=${OFFSETS[$i]}
  log "step 3: run $((i + 1))/$RUNS, overwrite $CHANGE_MIB MiB at $OFF MiB"
  both "$i" step3
done
log "step 4: docker run true with the $SIZE_MIB MiB volume, $START_RUNS times"
for i in $(seq 0 $((START_RUNS - 1))); do both "$i" step4; done

step6() { # step6 DRIVER ROUND: CONC containers at once, each with a new volume
  local drv=$1 r=$2 i t0 t1 pids=()
  sync
  t0=$(date +%s%N)
  for i in $(seq 1 "$CONC"); do
    # shellcheck disable=SC2046
    ( v=conc-$drv-$r-$i && vcreate $(create_args "$drv") "$v" &&
      run -v "$v:/data" "$IMAGE" dd if=/dev/urandom of=/data/f bs=1M count="$CONC_MIB" iflag=fullblock ) &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || die "$drv: a concurrent run failed ($(tail -3 "$RUNLOG" | tr '\n' ' '))"; done
  t1=$(date +%s%N)
  rec "$drv" concurrent "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", (b - a) / 1e9 }')"
}
log "step 6: $CONC containers at once, each writing $CONC_MIB MiB to a new volume, $CONC_ROUNDS rounds"
PLOG_FROM=$(wc -l < "$PLUGIN_LOG")
for i in $(seq 0 $((CONC_ROUNDS - 1))); do
  if [ $((i % 2)) = 0 ]; then step6 local "$i"; step6 blobstore "$i"; else step6 blobstore "$i"; step6 local "$i"; fi
done
PLOG_TO=$(wc -l < "$PLUGIN_LOG")
for i in $(seq 0 $((CONC_ROUNDS - 1))); do for j in $(seq 1 "$CONC"); do
  docker volume rm "conc-local-$i-$j" "conc-blobstore-$i-$j" >/dev/null 2>> "$RUNLOG" || true
done; done

# ------------------------------------------------------------ after the runs ---
sync
LOCAL_DATA=$D/root/volumes/$VOL_L/_data
[ -d "$LOCAL_DATA" ] || die "no $LOCAL_DATA"
rec local size_blob "$(stat -c %s "$LOCAL_DATA/blob")"
rec local du_data "$(du -sb "$LOCAL_DATA" | cut -f1)"
BWORK=$STORE/volume-work/$VOL_B
[ -f "$BWORK/data/blob" ] || die "no $BWORK/data/blob"
rec blobstore size_blob "$(stat -c %s "$BWORK/data/blob")"
docker volume inspect "$VOL_B" > "$W/inspect.json"
mounts=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[0].get('Status', {}).get('mounts', '?'))" "$W/inspect.json")
rec blobstore mounts_after "$mounts"
df_json() { "$BC" df --store "$STORE" --json > "$W/df-$1.json"; python3 -c "import json,sys; d = json.load(open(sys.argv[1])); print(d['storedBytes'], d['logicalBytes'], d['chunks'], d['packBytes'])" "$W/df-$1.json"; }
read -r sb lb ch pb < <(df_json before)
rec blobstore stored_before_gc "$sb"; rec blobstore logical_before_gc "$lb"; rec blobstore chunks_before_gc "$ch"; rec blobstore packs_before_gc "$pb"
rec blobstore du_store_before_gc "$(du -sb "$STORE" | cut -f1)"
t0=$(date +%s%N)
"$BC" gc --store "$STORE" > "$W/gc.txt" 2>&1 || die "blobctl gc failed: $(tail -3 "$W/gc.txt")"
t1=$(date +%s%N)
rec blobstore gc_wall "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", (b - a) / 1e9 }')"
sync
read -r sb lb ch pb < <(df_json after)
rec blobstore stored_after_gc "$sb"; rec blobstore logical_after_gc "$lb"; rec blobstore chunks_after_gc "$ch"; rec blobstore packs_after_gc "$pb"
rec blobstore du_store_after_gc "$(du -sb "$STORE" | cut -f1)"
rec blobstore du_volume_work "$(du -sb "$STORE/volume-work" | cut -f1)"
rec blobstore du_work_data "$(du -sb "$BWORK/data" | cut -f1)"
# The snapshot in the store must be the working copy.
mkdir -p "$W/export"
"$BC" volume export --store "$STORE" "$VOL_B" -o - | tar -x -C "$W/export" -f - || die "volume export failed"
if cmp -s "$W/export/blob" "$BWORK/data/blob"; then rec blobstore snapshot_matches 1; else rec blobstore snapshot_matches 0; fi
rm -rf "$W/export"

docker volume rm "$VOL_L" "$VOL_B" >/dev/null || log "could not remove the volumes"
stop_pid "$DOCKERD_PID" 30; DOCKERD_PID=
stop_pid "$PLUGIN_PID" 30; PLUGIN_PID=
rec docker log_errors "$(grep -c 'level=error' "$D/dockerd.log" || true)"

# ------------------------------------------------------------------ report ---
SIZE_MIB=$SIZE_MIB RUNS=$RUNS CHANGE_PCT=$CHANGE_PCT CHANGE_MIB=$CHANGE_MIB START_RUNS=$START_RUNS \
  CONC=$CONC CONC_MIB=$CONC_MIB CONC_ROUNDS=$CONC_ROUNDS PLOG_FROM=$PLOG_FROM PLOG_TO=$PLOG_TO \
  OFFSETS="${OFFSETS[*]}" DOCKER_VERSION=$DOCKER_VERSION NCORES=$(nproc) LOAD_START="$LOAD_START" BLOBCTL_ID=$BLOBCTL_ID \
  python3 - "$RES" "$PLUGIN_LOG" "$W/gc.txt" "${OUT_JSON:-}" <<'EOF'
import json, os, statistics, sys
E = os.environ
res_f, plugin_log, gc_f, out_json = sys.argv[1:5]
size_mib, runs, change_mib, start_runs = (int(E[k]) for k in ("SIZE_MIB", "RUNS", "CHANGE_MIB", "START_RUNS"))
change_pct = E["CHANGE_PCT"]
offsets = E["OFFSETS"].split()
vals = {}
for line in open(res_f):
    drv, step, v = line.rstrip("\n").split("\t")
    vals.setdefault((drv, step), []).append(float(v))
one = lambda d, s: vals[(d, s)][0] if (d, s) in vals else None
def fmt(v, nd=2): return "n/a" if v is None else f"{v:,.{nd}f}"
def ratio(a, b): return None if (a is None or not b) else a / b

rows = []
def row(label, l, b, nd=2):
    rows.append(dict(label=label, local=l, blobstore=b, ratio=ratio(b, l)))
    print(f"{label:<46}{fmt(l, nd):>12}{fmt(b, nd):>12}{fmt(ratio(b, l)):>10}")

print()
print(f"Docker volume drivers: local vs blobstore plugin; file {size_mib} MiB, {runs} overwrite runs of "
      f"{change_mib} MiB ({change_pct} %), Docker Engine {E['DOCKER_VERSION']}, {E['NCORES']} cores")
hdr = f"{'step (wall seconds of the docker CLI)':<46}{'local':>12}{'blobstore':>12}{'b/local':>10}"
print(hdr); print("-" * len(hdr))
for d in ("local", "blobstore"):
    vals[(d, "create+first_run")] = [one(d, "create") + one(d, "first_run")]
row("1 volume create + first run (empty), s", one("local", "create+first_run"), one("blobstore", "create+first_run"))
row("    of which volume create, s", one("local", "create"), one("blobstore", "create"))
row("    of which docker run true, s", one("local", "first_run"), one("blobstore", "first_run"))
row(f"2 write {size_mib} MiB (run incl. unmount), s", one("local", "write"), one("blobstore", "write"))
ow = {d: vals[(d, "overwrite")] for d in ("local", "blobstore")}
row(f"3 overwrite {change_mib} MiB x{runs}: min, s", min(ow["local"]), min(ow["blobstore"]))
row(f"    median, s", statistics.median(ow["local"]), statistics.median(ow["blobstore"]))
row(f"    max, s", max(ow["local"]), max(ow["blobstore"]))
st = {d: vals[(d, "start")] for d in ("local", "blobstore")}
row(f"4 run true, {size_mib} MiB volume, median of {start_runs}, s", statistics.median(st["local"]), statistics.median(st["blobstore"]))
cc = {d: vals[(d, "concurrent")] for d in ("local", "blobstore")}
row(f"6 {E['CONC']} runs at once, {E['CONC_MIB']} MiB each: median of {E['CONC_ROUNDS']}, s",
    statistics.median(cc["local"]), statistics.median(cc["blobstore"]))
row(f"    max, s", max(cc["local"]), max(cc["blobstore"]))
print("-" * len(hdr))
# Plugin call latencies during step 6, from the plugin's "volume plugin call ms=… path=…" lines.
calls = {}
for l in open(plugin_log, errors="replace").read().splitlines()[int(E["PLOG_FROM"]):int(E["PLOG_TO"])]:
    if not l.endswith("volume plugin call"): continue
    f = dict(w.split("=", 1) for w in l.split() if "=" in w)
    calls.setdefault(f.get("path", "?").replace("/VolumeDriver.", ""), []).append(float(f.get("ms", "nan")))
def pct(xs, q):
    xs = sorted(xs); return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]
every = [v for xs in calls.values() for v in xs]
print(f"6 blobstore plugin calls during step 6 (ms): " + ("none logged" if not every else
      f"all {len(every)}: p50 {pct(every, .5):.1f}, p99 {pct(every, .99):.1f}, max {max(every):.1f}"))
for k in sorted(calls):
    xs = calls[k]
    print(f"    {k:<12} n {len(xs):>3}  p50 {pct(xs, .5):>8.1f}  p99 {pct(xs, .99):>8.1f}  max {max(xs):>8.1f}")
vals[("blobstore", "plugin_call_p99_ms")] = [pct(every, .99)] if every else []
print("-" * len(hdr))
MB = lambda v: None if v is None else v / 1e6
print("5 bytes on disk after all runs, MB (10^6 bytes)")
print(f"  {'local: du -sb of the volume _data':<44}{fmt(MB(one('local', 'du_data')), 1):>12}")
print(f"  {'blobstore: storedBytes before gc':<44}{'':>12}{fmt(MB(one('blobstore', 'stored_before_gc')), 1):>12}")
print(f"  {'blobstore: storedBytes after gc':<44}{'':>12}{fmt(MB(one('blobstore', 'stored_after_gc')), 1):>12}"
      f"{fmt(ratio(one('blobstore', 'stored_after_gc'), one('local', 'du_data'))):>10}")
print(f"  {'blobstore: packBytes after gc (pack files)':<44}{'':>12}{fmt(MB(one('blobstore', 'packs_after_gc')), 1):>12}")
print(f"  {'blobstore: du -sb store dir before gc':<44}{'':>12}{fmt(MB(one('blobstore', 'du_store_before_gc')), 1):>12}")
print(f"  {'blobstore: du -sb store dir after gc':<44}{'':>12}{fmt(MB(one('blobstore', 'du_store_after_gc')), 1):>12}"
      f"{fmt(ratio(one('blobstore', 'du_store_after_gc'), one('local', 'du_data'))):>10}")
print(f"  {'    of which volume-work/ (working copy)':<44}{'':>12}{fmt(MB(one('blobstore', 'du_volume_work')), 1):>12}")
print()
print(f"CPU seconds per step (median): plugin = the blobctl volume-plugin process; machine = all busy CPU "
      f"({E['NCORES']} cores; includes dockerd, containerd, the container and anything else running)")
h2 = f"{'step':<22}{'wall local':>11}{'wall blob':>11}{'plugin CPU':>11}{'machine CPU':>12}{'machine CPU':>12}"
print(h2); print(f"{'':<22}{'':>11}{'':>11}{'blob':>11}{'local':>12}{'blob':>12}"); print("-" * len(h2))
med = lambda d, s: statistics.median(vals[(d, s)]) if (d, s) in vals else None
for s_, lab in (("create", "1 volume create"), ("first_run", "1 first run"), ("write", "2 write"),
                ("overwrite", "3 overwrite"), ("start", "4 run true")):
    print(f"{lab:<22}{fmt(med('local', s_)):>11}{fmt(med('blobstore', s_)):>11}{fmt(med('blobstore', s_ + '.plugin_cpu')):>11}"
          f"{fmt(med('local', s_ + '.busy_cpu')):>12}{fmt(med('blobstore', s_ + '.busy_cpu')):>12}")
print(f"load average at start {E['LOAD_START']}, at end {' '.join(open('/proc/loadavg').read().split()[:3])}")
print()
print("per run, s (3):  local     " + " ".join(f"{v:.2f}" for v in ow["local"]))
print("                 blobstore " + " ".join(f"{v:.2f}" for v in ow["blobstore"]))
print("per run, s (4):  local     " + " ".join(f"{v:.2f}" for v in st["local"]))
print("                 blobstore " + " ".join(f"{v:.2f}" for v in st["blobstore"]))
print("offsets (MiB):  ", " ".join(offsets))
print(f"blobctl df: before gc storedBytes {int(one('blobstore', 'stored_before_gc'))}, logicalBytes "
      f"{int(one('blobstore', 'logical_before_gc'))}, chunks {int(one('blobstore', 'chunks_before_gc'))}, packBytes "
      f"{int(one('blobstore', 'packs_before_gc'))}; after gc storedBytes {int(one('blobstore', 'stored_after_gc'))}, "
      f"logicalBytes {int(one('blobstore', 'logical_after_gc'))}, chunks {int(one('blobstore', 'chunks_after_gc'))}, "
      f"packBytes {int(one('blobstore', 'packs_after_gc'))}")
gc_out = " ".join(open(gc_f).read().split())
print(f"blobctl gc: {one('blobstore', 'gc_wall'):.2f} s: {gc_out[:300]}")
print(f"checks: blob size local {int(one('local', 'size_blob'))}, blobstore {int(one('blobstore', 'size_blob'))}; "
      f"blobstore mounts after the runs {int(one('blobstore', 'mounts_after'))}; "
      f"overwrite runs that returned with 0 mounts and a new snapshot recorded: "
      f"{sum(1 for m, n in zip(vals[('blobstore', 'run_mounts_after')], vals[('blobstore', 'run_new_snapshot')]) if m == 0 and n == 1)}/{runs}; "
      f"exported snapshot == working copy: "
      f"{'yes' if one('blobstore', 'snapshot_matches') == 1 else 'NO'}")
lines = open(plugin_log, errors="replace").read().splitlines()
LEVELS = ("trace", "debug", "info", "notice", "warning", "error", "critical")
level_of = lambda l: (l.split()[1] if len(l.split()) > 1 and l.split()[1] in LEVELS else "other")
counts = {}
for l in lines: counts[level_of(l)] = counts.get(level_of(l), 0) + 1
print(f"plugin log ({plugin_log}): {len(lines)} lines; by level: "
      + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none")
      + f"; warning+error+critical: {sum(counts.get(k, 0) for k in ('warning', 'error', 'critical'))}"
      f"; dockerd log: {int(one('docker', 'log_errors'))} level=error lines")
for l in [l for l in lines if level_of(l) in ("warning", "error", "critical", "other")][:10]:
    print("  plugin: " + l[:220])
notes = [
    "walls are the docker CLI command from start to exit (date +%s%N), after an untimed sync; `docker run --rm`"
    " returns once the container is removed, so its volume unmount is inside the wall; for blobstore the last"
    " unmount archives the whole volume directory into the store (the new snapshot) before Docker gets the answer.",
    "containers write without sync/fsync: the local driver's writes may still be in the page cache when its run"
    " ends; the blobstore unmount reads the whole directory back to archive it, and whatever flushing the plugin"
    " does for the store is inside its wall.",
    "3: each run overwrites %d MiB at a seeded random 1 MiB-aligned offset (same offsets for both drivers);"
    " the order of the two drivers alternates per run." % change_mib,
    "4: every blobstore start also unmounts, which archives the %d MiB directory again (same content)." % size_mib,
    "5 local: du -sb of the volume's _data = the one file, current version only (no history).",
    "5 blobstore storedBytes (blobctl df) = compressed bytes of the chunks the store holds: before gc it"
    " and after gc includes the chunks of every version: each recorded unmount is a version the volume keeps"
    " (`blobctl volume history`), so this is the cost of all of them, where local keeps only the last. packBytes (the pack files) still holds the freed chunks' bytes"
    " until gc compacts the pack (only past --compact-threshold, default 0.5 dead); du -sb of the store dir"
    " counts the pack files, the index and metadata, and the working copy under volume-work/ (a full"
    " uncompressed copy of the volume's files).",
    "blobctl: %s." % E["BLOBCTL_ID"],
]
print()
for n in notes: print("note: " + n)
if out_json:
    json.dump(dict(size_mib=size_mib, runs=runs, change_pct=change_pct, change_mib=change_mib, offsets=offsets,
                   values={f"{d}.{s}": v for (d, s), v in vals.items()}, rows=rows, notes=notes), open(out_json, "w"), indent=2)
    print(f"\nJSON written to {out_json}")
EOF

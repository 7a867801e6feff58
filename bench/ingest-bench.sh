#!/usr/bin/env bash
# bench/ingest-bench.sh [CORPUS_DIR]
#
# Ingest / read / space benchmark of BlobStore (blobctl) against restic, borg
# and two single-pass floors (zstd -3 -T0, openssl sha256), on the layer-tar
# corpus built by shared/bench/make-corpus.sh.
#
#   CORPUS_DIR   default $HOME/.cache/blobstore-corpus; built with
#                ../../shared/bench/make-corpus.sh (relative to this script)
#                when its corpus.tsv is missing.
#
# Environment:
#   BLOBCTL=PATH     blobctl binary (default REPO/.build/release/blobctl, built
#                    with `swift build -c release --product blobctl` if missing)
#   TOOLS=LIST       comma list of blobstore,restic,borg,floors (default: all)
#   CHUNK_SWEEP=1    blobctl only: cold v1+v2 ingest per chunk-size setting
#                    (avg 16K..256K, min=avg/4, max=avg*4) instead of the main run
#   SWEEP_AVGS=LIST  chunk averages in bytes for CHUNK_SWEEP (default 16K..256K)
#   SWEEP_LEVELS=LIST  zstd levels for CHUNK_SWEEP (init --level; default: the
#                    store's default level)
#   RANGE_COUNT=N    1 MiB range reads for bench-ranges (default 2000)
#   IDLE_READS_SECONDS=S  before settling v2, time 1 MiB reads of app-v2 with
#                    nothing else running for S s (default 60), so the idle tail
#                    (p99.9, slowest, reads over 10 ms) rests on as many reads as
#                    the tail while settling does
#   OUT_JSON=FILE    also write all figures as JSON to FILE
#   BENCH_TMPDIR=DIR parent of the scratch dir (default /work/tmp-bench if /work
#                    exists, else ${TMPDIR:-/tmp}); the scratch dir is removed at
#                    the end unless KEEP=1
#   REPEAT=N         run the whole suite N times (fresh repos each time) and
#                    report each step's best (lowest wall) run (default 1)
#   INIT_ARGS="..."  `blobctl init` options (e.g. "--level 0": ingest stores
#                    chunks raw and the settler compresses them)
#   SETTLE=0         skip `blobctl settle` after v1 and after v2 (the settled
#                    rows; default 1)
#   VERIFY=1         after the blobstore reads, re-read every blob and compare
#                    its sha256 with corpus.tsv (untimed)
#
# Each measured step runs once, after a warm-up `cat FILES > /dev/null`, under
# `/usr/bin/time -f '%e %U %S %M'` (wall s, user s, sys s, peak RSS KiB of the
# largest process in the tree). MB/s = input bytes / 1e6 / wall seconds.
# The CPU time other processes used during a step is taken from /proc/stat;
# steps where it exceeds 10% of the machine are flagged as disturbed.
set -euo pipefail
export LC_ALL=C

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)
CORPUS=$(realpath -m "${1:-$HOME/.cache/blobstore-corpus}")
TOOLS=${TOOLS:-blobstore,restic,borg,floors}
CHUNK_SWEEP=${CHUNK_SWEEP:-0}
RANGE_COUNT=${RANGE_COUNT:-2000}
RANGE_SIZE=1048576
IDLE_READS_SECONDS=${IDLE_READS_SECONDS:-60}
KEEP=${KEEP:-0}
VERIFY=${VERIFY:-0}
REPEAT=${REPEAT:-1}
SETTLE=${SETTLE:-1}
INIT_ARGS=${INIT_ARGS:-}
[[ "$REPEAT" =~ ^[1-9][0-9]*$ ]] || { echo "REPEAT must be a positive integer" >&2; exit 2; }
REP=1

V1_FILES=(base.tar app-v1.tar small.tar)
V2_FILES=(app-v2.tar small-v2.tar)
ALL_FILES=("${V1_FILES[@]}" "${V2_FILES[@]}")

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] ERROR: %s\n' "$*" >&2; exit 1; }
want() { [[ ",$TOOLS," == *",$1,"* ]]; }

if [ "$CHUNK_SWEEP" = 1 ]; then TOOLS=blobstore; fi

# ------------------------------------------------------------ prerequisites ---
. "$SCRIPT_DIR/lib.sh" # ensure COMMAND PACKAGE
if [ ! -x /usr/bin/time ]; then
  log "/usr/bin/time not found; installing package time"
  apt-get update -qq >&2 || true; APT_UPDATED=1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >&2 || true
  [ -x /usr/bin/time ] || die "GNU time (/usr/bin/time) is required (apt-get install time)"
fi
PY=python3; command -v "$PY" >/dev/null 2>&1 || PY=/usr/bin/python3
command -v "$PY" >/dev/null 2>&1 || ensure python3 python3-minimal
want restic && ensure restic restic
want borg && ensure borg borgbackup
want floors && { ensure zstd zstd; ensure openssl openssl; }

# ------------------------------------------------------------------- corpus ---
if [ ! -s "$CORPUS/corpus.tsv" ]; then
  MAKE_CORPUS=$SCRIPT_DIR/../../shared/bench/make-corpus.sh
  [ -x "$MAKE_CORPUS" ] || [ -f "$MAKE_CORPUS" ] || die "no corpus at $CORPUS and no $MAKE_CORPUS to build one"
  log "no corpus.tsv in $CORPUS; building it with $MAKE_CORPUS (downloads, several minutes)"
  bash "$MAKE_CORPUS" "$CORPUS" >&2 || die "corpus build failed"
fi
for f in "${ALL_FILES[@]}"; do [ -s "$CORPUS/$f" ] || die "corpus file missing: $CORPUS/$f"; done

fsize() { stat -c %s "$1"; }
sum_sizes() { local t=0 f; for f in "$@"; do t=$((t + $(fsize "$CORPUS/$f"))); done; echo "$t"; }
V1_BYTES=$(sum_sizes "${V1_FILES[@]}")
V2_BYTES=$(sum_sizes "${V2_FILES[@]}")
ALL_BYTES=$(sum_sizes "${ALL_FILES[@]}")
corpus_sha() { awk -F'\t' -v n="$1" '$1==n{print $3}' "$CORPUS/corpus.tsv"; }

# ------------------------------------------------------------------ blobctl ---
if want blobstore; then
  if [ -z "${BLOBCTL:-}" ]; then
    BLOBCTL=$REPO_DIR/.build/release/blobctl
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
W=$(mktemp -d "$PARENT/ingest-bench.XXXXXX")
cleanup() { local rc=$?; if [ "$KEEP" = 1 ]; then log "kept scratch dir $W"; else rm -rf "$W"; fi; exit $rc; }
trap cleanup EXIT
trap 'exit 130' INT TERM
RES=$W/results.tsv   # tool phase wall user sys rss_kib input_bytes rep other_cpu_s
SIZES=$W/sizes.tsv   # tool metric value
EXTRA=$W/extra.tsv   # key value (free-form facts for the report)
: > "$RES"; : > "$SIZES"; : > "$EXTRA"
log "corpus $CORPUS, scratch $W"

warm() { cat "$@" > /dev/null; }
warm_dir() { find "$1" -type f -exec cat {} + > /dev/null; }
join_cmds() { local IFS=';'; printf 'set -e;%s' "$*"; }

# measure TOOL PHASE INPUT_BYTES CMD... : run CMD once under GNU time, in the
# corpus dir, stdout to $W/out/TOOL.PHASE.out, stderr to .err. Returns CMD's status.
mkdir -p "$W/out"
measure() {
  local tool=$1 phase=$2 bytes=$3; shift 3
  local tf=$W/out/$tool.$phase.time out=$W/out/$tool.$phase.out err=$W/out/$tool.$phase.err rc=0
  log "$tool: $phase${REPEAT_TAG:-}"
  local busy0 busy1; busy0=$(cpu_busy_ticks)
  (cd "$CORPUS" && /usr/bin/time -f '%e %U %S %M' -o "$tf" "$@" > "$out" 2> "$err") || rc=$?
  busy1=$(cpu_busy_ticks)
  if [ "$rc" != 0 ]; then
    log "$tool $phase FAILED (exit $rc); last stderr lines:"
    tail -n 15 "$err" | sed 's/^/    /' >&2
    return "$rc"
  fi
  local line; line=$(tail -n 1 "$tf")
  # shellcheck disable=SC2086
  set -- $line
  record "$tool" "$phase" "$bytes" "$busy0" "$busy1" "$@"
}
# busy CPU ticks of the whole machine (user+nice+system+irq+softirq+steal)
cpu_busy_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9; exit}' /proc/stat; }
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
record() { # record TOOL PHASE BYTES BUSY0 BUSY1 WALL USER SYS RSS
  local other
  other=$(awk -v b0="$4" -v b1="$5" -v hz="$CLK_TCK" -v u="$7" -v s="$8" \
    'BEGIN{o=(b1-b0)/hz-u-s; if(o<0)o=0; printf "%.2f", o}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$6" "$7" "$8" "$9" "$3" "$REP" "$other" >> "$RES"
  log "    wall ${6}s user ${7}s sys ${8}s rss $(( $9 / 1024 ))MiB (other processes: ${other} CPU s)"
}
size_of() { # size_of TOOL METRIC DIR : apparent and allocated bytes
  local a b
  a=$(du -sb "$3" | cut -f1); b=$(du -sB1 "$3" | cut -f1)
  printf '%s\t%s\t%s\n' "$1" "$2" "$a" >> "$SIZES"
  printf '%s\t%s_alloc\t%s\n' "$1" "$2" "$b" >> "$SIZES"
  if [ "$a" -gt 0 ] && { [ $((b * 10)) -gt $((a * 11)) ] || [ $((b * 10)) -lt $((a * 9)) ]; }; then
    log "note: $1 $2: apparent size $a differs from allocated $b by >10% (sparse or tiny files?)"
  fi
}
extra() { printf '%s\t%s\n' "$1" "$2" >> "$EXTRA"; }

# --------------------------------------------------------------- BlobStore ---
B() { "$BLOBCTL" --store "$STORE" "$@"; }
digest_of() { # first thing in FILE that looks like a sha256 digest
  grep -Eo '(sha256:)?[0-9a-f]{64}' "$1" | head -n 1
}
blob_df() { # blob_df TAG : record df --json storedBytes/logicalBytes
  local j
  if j=$(B df --json 2>"$W/out/df.err"); then
    printf '%s' "$j" > "$W/out/df.$1.json"
    "$PY" - "$W/out/df.$1.json" "$1" >> "$SIZES" <<'EOF' || log "could not parse df --json output"
import json, sys
d = json.load(open(sys.argv[1]))
for k in ("storedBytes", "logicalBytes"):
    if k in d: print("blobstore\tdf_%s_%s\t%d" % (k, sys.argv[2], int(d[k])))
EOF
  else
    log "blobctl df --json failed: $(tail -n 3 "$W/out/df.err" | tr '\n' ' ')"
  fi
}

# settle_blobstore TAG: the second tier, `blobctl settle` at full speed (a server
# would run it niced, when idle); stored size after it as settled_TAG.
# After v2, the settler runs as a server runs it (idle priority, the default) while a
# client reads 1 MiB ranges of app-v2 (what it is rewriting): p50/p99 of those
# reads beside the same reads with nothing else running.
settle_blobstore() {
  [ "$SETTLE" = 1 ] || return 0
  if [ "$1" = v1 ]; then
    measure blobstore settle_v1 0 "$BLOBCTL" --store "$STORE" settle --full-speed || die "blobctl settle failed"
  else
    local d i=0 sp
    d=$(digest_of "$W/out/put.app-v2.tar") || die "no digest for app-v2.tar"
    # Idle and busy alike: runs of 100 reads in a fresh process each, every read's
    # latency kept, percentiles over all reads of all runs (pooled). Idle runs go on
    # for IDLE_READS_SECONDS: a tail is only comparable over similar read counts.
    local idle_end=$((SECONDS + IDLE_READS_SECONDS))
    while [ "$i" -lt 5 ] || [ "$SECONDS" -lt "$idle_end" ]; do
      B bench-ranges "$d" --count 100 --size "$RANGE_SIZE" --json --samples > "$W/out/latency.idle.$i.json" || die "bench-ranges failed"
      i=$((i + 1))
    done
    i=0
    measure blobstore settle_v2 0 "$BLOBCTL" --store "$STORE" settle & sp=$!
    while kill -0 "$sp" 2>/dev/null; do
      B bench-ranges "$d" --count 100 --size "$RANGE_SIZE" --json --samples > "$W/out/latency.settling.$i.json" || die "bench-ranges failed"
      i=$((i + 1))
    done
    wait "$sp" || die "blobctl settle failed"
    "$PY" - "$W/out" >> "$EXTRA" <<'EOF' || log "could not parse bench-ranges output"
import glob, json, math, sys
def pooled(pattern):
    xs = []
    for f in sorted(glob.glob(sys.argv[1] + pattern)):
        t = open(f).read(); xs += json.loads(t[t.index("{"):t.rindex("}") + 1])["latenciesMs"]
    xs.sort()
    rank = lambda p: xs[max(0, math.ceil(p * len(xs)) - 1)]
    return xs and "%.2f %.2f %.2f %d %.2f %d" % (rank(0.50), rank(0.99), xs[-1], len(xs), rank(0.999), sum(1 for x in xs if x > 10))
idle, busy = pooled("/latency.idle.*.json"), pooled("/latency.settling.*.json")
if idle: print("latency.idle\t" + idle)
if busy: print("latency.settling\t" + busy)
EOF
  fi
  size_of blobstore "settled_$1" "$STORE"
}

# ranges_unsettled: the 1 MiB range reads of base.tar before settling (one frame per
# chunk, the fast tier), to set beside the same reads after settling (frames of several
# chunks cost more per range read: the issue allows 20%).
ranges_unsettled() {
  [ "$SETTLE" = 1 ] || return 0
  local d
  d=$(digest_of "$W/out/put.base.tar") || return 0
  B bench-ranges "$d" --count "$RANGE_COUNT" --size "$RANGE_SIZE" --json > "$W/out/ranges.unsettled.json" || { log "bench-ranges failed"; return 0; }
  "$PY" - "$W/out/ranges.unsettled.json" >> "$EXTRA" <<'EOF' || log "could not parse bench-ranges output"
import json, sys
t = open(sys.argv[1]).read(); d = json.loads(t[t.index("{"):t.rindex("}") + 1])
print("ranges_unsettled\t%s %.2f %.2f" % (d["mbPerSecond"], d["p50ms"], d["p99ms"]))
EOF
}

run_blobstore() {
  STORE=$W/blobstore; rm -rf "$STORE"
  # shellcheck disable=SC2086
  measure blobstore init 0 "$BLOBCTL" --store "$STORE" init $INIT_ARGS || die "blobctl init failed"
  # one `bash -c` per phase ($0=blobctl $1=store $2=outdir), one output file per put
  local f put_v1=() put_v2=() put_warm=()
  for f in "${V1_FILES[@]}"; do put_v1+=("\"\$0\" --store \"\$1\" put $f > \"\$2/put.$f\""); done
  for f in "${V2_FILES[@]}"; do put_v2+=("\"\$0\" --store \"\$1\" put $f > \"\$2/put.$f\""); done
  for f in "${ALL_FILES[@]}"; do put_warm+=("\"\$0\" --store \"\$1\" put $f > \"\$2/warm.$f\""); done

  warm "${V1_FILES[@]/#/$CORPUS/}"
  measure blobstore cold_v1 "$V1_BYTES" bash -c "$(join_cmds "${put_v1[@]}")" "$BLOBCTL" "$STORE" "$W/out" \
    || die "blobctl put (v1) failed"
  size_of blobstore stored_v1 "$STORE"; blob_df v1
  ranges_unsettled
  settle_blobstore v1
  warm "${V2_FILES[@]/#/$CORPUS/}"
  measure blobstore cold_v2 "$V2_BYTES" bash -c "$(join_cmds "${put_v2[@]}")" "$BLOBCTL" "$STORE" "$W/out" \
    || die "blobctl put (v2) failed"
  size_of blobstore stored_v2 "$STORE"; blob_df v2
  settle_blobstore v2
  warm "${ALL_FILES[@]/#/$CORPUS/}"
  measure blobstore warm "$ALL_BYTES" bash -c "$(join_cmds "${put_warm[@]}")" "$BLOBCTL" "$STORE" "$W/out" \
    || die "blobctl put (warm) failed"
  size_of blobstore stored_warm "$STORE"; blob_df warm

  declare -gA DIGEST=()
  local d w want_sha
  for f in "${ALL_FILES[@]}"; do
    d=$(digest_of "$W/out/put.$f") || true
    [ -n "$d" ] || die "no digest in blobctl put output for $f: $(head -c 200 "$W/out/put.$f")"
    w=$(digest_of "$W/out/warm.$f") || true
    [ "$w" = "$d" ] || log "WARNING: warm put of $f gave digest '$w', cold gave '$d'"
    want_sha=$(corpus_sha "$f")
    [ "${d#sha256:}" = "$want_sha" ] || log "note: digest of $f ($d) is not its plain sha256 ($want_sha)"
    DIGEST[$f]=$d
    extra "digest.$f" "$d"
  done

  local gets=()
  for f in "${ALL_FILES[@]}"; do gets+=("\"\$0\" --store \"\$1\" get ${DIGEST[$f]} > /dev/null"); done
  warm_dir "$STORE"
  measure blobstore read "$ALL_BYTES" bash -c "$(join_cmds "${gets[@]}")" "$BLOBCTL" "$STORE" \
    || die "blobctl get failed"

  if [ "$VERIFY" = 1 ]; then
    log "blobstore: verifying every blob against corpus.tsv (untimed)"
    for f in "${ALL_FILES[@]}"; do
      local got; got=$(B get "${DIGEST[$f]}" | sha256sum | cut -d' ' -f1)
      [ "$got" = "$(corpus_sha "$f")" ] || die "blobctl get ${DIGEST[$f]} ($f) returned wrong content"
    done
    extra verify ok
  fi

  # 1 MiB random range reads over the largest blob (base.tar)
  local rd=${DIGEST[base.tar]}
  if measure blobstore ranges 0 "$BLOBCTL" --store "$STORE" bench-ranges "$rd" \
       --count "$RANGE_COUNT" --size "$RANGE_SIZE" --json; then
    "$PY" - "$W/out/blobstore.ranges.out" "$REP" >> "$EXTRA" <<'EOF' || log "bench-ranges: could not parse JSON output"
import json, sys
txt = open(sys.argv[1]).read()
d = json.loads(txt[txt.index("{"):txt.rindex("}") + 1])
print("ranges.%s\t%d %.6f %s" % (sys.argv[2], int(d["bytes"]), float(d["seconds"]), d.get("mbPerSecond", "-")))
EOF
  else
    log "bench-ranges unavailable: 1 MiB range reads reported as n/a"
  fi
  # the same reads with the registry's default chunk cache (128 MiB), which keeps the
  # members a frame decodes on the way to the ones asked for
  if B bench-ranges "$rd" --count "$RANGE_COUNT" --size "$RANGE_SIZE" --cache-mib 128 --json > "$W/out/ranges.cached.json"; then
    "$PY" - "$W/out/ranges.cached.json" >> "$EXTRA" <<'EOF' || log "could not parse bench-ranges output"
import json, sys
t = open(sys.argv[1]).read(); d = json.loads(t[t.index("{"):t.rindex("}") + 1])
print("ranges_cached\t%s" % d["mbPerSecond"])
EOF
  fi
}

# ---------------------------------------------------------- BlobStore sweep ---
run_sweep() {
  local avgs=${SWEEP_AVGS:-16384,32768,65536,131072,262144} levels=${SWEEP_LEVELS:-default}
  local avg min max level id lv=() f puts_v1=() puts_v2=()
  for f in "${V1_FILES[@]}"; do puts_v1+=("\"\$0\" --store \"\$1\" put $f > /dev/null"); done
  for f in "${V2_FILES[@]}"; do puts_v2+=("\"\$0\" --store \"\$1\" put $f > /dev/null"); done
  warm "${ALL_FILES[@]/#/$CORPUS/}"
  for level in ${levels//,/ }; do
    lv=(); [ "$level" = default ] || lv=(--level "$level")
    for avg in ${avgs//,/ }; do
      min=$((avg / 4)); max=$((avg * 4)); id=L$level-$avg
      STORE=$W/sweep-$id; rm -rf "$STORE"
      measure blobstore "sweep_init_$id" 0 "$BLOBCTL" --store "$STORE" init \
        --min-chunk "$min" --avg-chunk "$avg" --max-chunk "$max" "${lv[@]}" \
        || die "blobctl init --avg-chunk $avg ${lv[*]} failed"
      measure blobstore "sweep_v1_$id" "$V1_BYTES" bash -c "$(join_cmds "${puts_v1[@]}")" "$BLOBCTL" "$STORE" \
        || die "blobctl put (v1) failed for $id"
      size_of blobstore "sweep_stored_v1_$id" "$STORE"
      measure blobstore "sweep_v2_$id" "$V2_BYTES" bash -c "$(join_cmds "${puts_v2[@]}")" "$BLOBCTL" "$STORE" \
        || die "blobctl put (v2) failed for $id"
      size_of blobstore "sweep_stored_v2_$id" "$STORE"
      blob_df "sweep_$id"
      extra "sweep.$id" "$level $min,$avg,$max"
      rm -rf "$STORE"
    done
  done
}

# ------------------------------------------------------------------ restic ---
run_restic() {
  local R=$W/restic T=$W/restic-restore
  rm -rf "$R" "$T" "$W/restic-cache"
  export RESTIC_PASSWORD=bench
  local RC=(restic --repo "$R" --cache-dir "$W/restic-cache")
  measure restic init 0 "${RC[@]}" init --repository-version 2 || die "restic init failed"
  extra restic.version "$(restic version | head -n 1)"
  extra restic.repo_version "$("${RC[@]}" cat config 2>/dev/null | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["version"])' || echo '?')"
  warm "${V1_FILES[@]/#/$CORPUS/}"
  measure restic cold_v1 "$V1_BYTES" "${RC[@]}" backup --host bench "${V1_FILES[@]}" || die "restic backup v1 failed"
  size_of restic stored_v1 "$R"
  warm "${V2_FILES[@]/#/$CORPUS/}"
  measure restic cold_v2 "$V2_BYTES" "${RC[@]}" backup --host bench "${V2_FILES[@]}" || die "restic backup v2 failed"
  size_of restic stored_v2 "$R"
  warm "${ALL_FILES[@]/#/$CORPUS/}"
  # --force: read every file again (no parent-snapshot metadata shortcut)
  measure restic warm "$ALL_BYTES" "${RC[@]}" backup --host bench --force "${ALL_FILES[@]}" || die "restic re-backup failed"
  size_of restic stored_warm "$R"
  mkdir -p "$T"
  warm_dir "$R"
  measure restic read "$ALL_BYTES" "${RC[@]}" restore latest --target "$T" || die "restic restore failed"
  local n; n=$(find "$T" -type f -name '*.tar' | wc -l)
  [ "$n" = "${#ALL_FILES[@]}" ] || log "WARNING: restic restored $n tar files, expected ${#ALL_FILES[@]}"
  rm -rf "$T"
  # supplementary: the same reads to /dev/null (one tar stream of the snapshot)
  measure restic read_null "$ALL_BYTES" sh -c '"$@" dump latest / > /dev/null' sh "${RC[@]}" \
    || log "restic dump failed (ignored)"
  # fixed cost of every restic command (repo open + scrypt key derivation)
  measure restic open 0 "${RC[@]}" cat config || true
  unset RESTIC_PASSWORD
}

# -------------------------------------------------------------------- borg ---
run_borg() {
  local R=$W/borg T=$W/borg-extract
  rm -rf "$R" "$T" "$W/borg-base"
  export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
  export BORG_BASE_DIR=$W/borg-base
  mkdir -p "$BORG_BASE_DIR"
  extra borg.version "$(borg --version)"
  measure borg init 0 borg init --encryption=none "$R" || die "borg init failed"
  # --files-cache=disabled: borg reads and chunks every file (like the others);
  # with the default files cache its warm run would skip unchanged paths.
  local BC=(borg create --compression zstd,3 --files-cache=disabled)
  warm "${V1_FILES[@]/#/$CORPUS/}"
  measure borg cold_v1 "$V1_BYTES" "${BC[@]}" "$R::v1" "${V1_FILES[@]}" || die "borg create v1 failed"
  size_of borg stored_v1 "$R"
  warm "${V2_FILES[@]/#/$CORPUS/}"
  measure borg cold_v2 "$V2_BYTES" "${BC[@]}" "$R::v2" "${V2_FILES[@]}" || die "borg create v2 failed"
  size_of borg stored_v2 "$R"
  warm "${ALL_FILES[@]/#/$CORPUS/}"
  measure borg warm "$ALL_BYTES" "${BC[@]}" "$R::warm" "${ALL_FILES[@]}" || die "borg create warm failed"
  size_of borg stored_warm "$R"
  mkdir -p "$T"
  warm_dir "$R"
  local tf=$W/out/borg.read.time rc=0 busy0 busy1
  log "borg: read${REPEAT_TAG:-}"
  busy0=$(cpu_busy_ticks)
  (cd "$T" && /usr/bin/time -f '%e %U %S %M' -o "$tf" borg extract "$R::warm" \
     > "$W/out/borg.read.out" 2> "$W/out/borg.read.err") || rc=$?
  busy1=$(cpu_busy_ticks)
  [ "$rc" = 0 ] || { tail -n 15 "$W/out/borg.read.err" >&2; die "borg extract failed"; }
  # shellcheck disable=SC2046
  record borg read "$ALL_BYTES" "$busy0" "$busy1" $(tail -n 1 "$tf")
  local n; n=$(find "$T" -type f -name '*.tar' | wc -l)
  [ "$n" = "${#ALL_FILES[@]}" ] || log "WARNING: borg extracted $n tar files, expected ${#ALL_FILES[@]}"
  rm -rf "$T"
  # supplementary: the same reads to /dev/null
  measure borg read_null "$ALL_BYTES" sh -c 'borg extract --stdout "$0" > /dev/null' "$R::warm" \
    || log "borg extract --stdout failed (ignored)"
  # The strong setting, for the settled tier's target: v1 and v2 only.
  local R10=$W/borg10
  rm -rf "$R10"
  measure borg10 init 0 borg init --encryption=none "$R10" || die "borg init (zstd,10) failed"
  warm "${V1_FILES[@]/#/$CORPUS/}"
  measure borg10 cold_v1 "$V1_BYTES" borg create --compression zstd,10 --files-cache=disabled "$R10::v1" "${V1_FILES[@]}" \
    || die "borg create (zstd,10) v1 failed"
  size_of borg10 stored_v1 "$R10"
  warm "${V2_FILES[@]/#/$CORPUS/}"
  measure borg10 cold_v2 "$V2_BYTES" borg create --compression zstd,10 --files-cache=disabled "$R10::v2" "${V2_FILES[@]}" \
    || die "borg create (zstd,10) v2 failed"
  size_of borg10 stored_v2 "$R10"
  rm -rf "$R10"
}

# ------------------------------------------------------------------ floors ---
run_floors() {
  local f zs=() ds=()
  for f in "${V1_FILES[@]}"; do zs+=("zstd -q -3 -T0 -c $f > /dev/null"); done
  warm "${V1_FILES[@]/#/$CORPUS/}"
  measure zstd cold_v1 "$V1_BYTES" bash -c "$(join_cmds "${zs[@]}")" || die "zstd failed"
  measure sha256 cold_v1 "$V1_BYTES" openssl dgst -sha256 "${V1_FILES[@]}" || die "openssl dgst failed"
  # size reference (untimed): zstd -3 of each v1 file, no dedup
  local total=0 n
  for f in "${V1_FILES[@]}"; do n=$(zstd -q -3 -T0 -c "$CORPUS/$f" | wc -c); total=$((total + n)); done
  printf 'zstd\tstored_v1\t%s\n' "$total" >> "$SIZES"
  extra zstd.version "$(zstd --version)"
  extra openssl.version "$(openssl version)"
}

# --------------------------------------------------------------------- run ---
START=$(date +%s)
b0=$(cpu_busy_ticks); sleep 1; b1=$(cpu_busy_ticks)
if [ $(( (b1 - b0) * 4 )) -gt $(( CLK_TCK * $(nproc) )) ]; then
  log "WARNING: the machine is $(( (b1 - b0) * 100 / CLK_TCK / $(nproc) ))% busy before the start; other work will distort the figures"
fi
for REP in $(seq 1 "$REPEAT"); do
  [ "$REPEAT" -gt 1 ] && REPEAT_TAG=" (run $REP/$REPEAT)"
  if [ "$CHUNK_SWEEP" = 1 ]; then
    run_sweep
  else
    if want blobstore; then run_blobstore; rm -rf "$W/blobstore"; fi
    if want restic; then run_restic; rm -rf "$W/restic" "$W/restic-cache"; fi
    if want borg; then run_borg; rm -rf "$W/borg" "$W/borg-base"; fi
    want floors && run_floors
  fi
done
extra elapsed_s "$(( $(date +%s) - START ))"
extra cores "$(nproc)"
extra repeat "$REPEAT"

# ------------------------------------------------------------------ report ---
"$PY" - "$RES" "$SIZES" "$EXTRA" "$CHUNK_SWEEP" "${OUT_JSON:-}" \
  "$V1_BYTES" "$V2_BYTES" "$ALL_BYTES" "$CORPUS" <<'EOF'
import json, sys
res_f, sizes_f, extra_f, sweep, out_json = sys.argv[1:6]
v1_bytes, v2_bytes, all_bytes = map(int, sys.argv[6:9])
corpus = sys.argv[9]
extra = {}
for line in open(extra_f):
    k, v = line.rstrip("\n").split("\t", 1)
    extra[k] = v
all_runs = {}
for line in open(res_f):
    tool, phase, wall, user, sys_, rss, nbytes, rep, other = line.rstrip("\n").split("\t")
    wall, user, sys_ = float(wall), float(user), float(sys_)
    nbytes = int(nbytes)
    all_runs.setdefault((tool, phase), []).append(
        dict(wall_s=wall, user_s=user, sys_s=sys_, cpu_s=round(user + sys_, 2),
             peak_rss_mib=round(int(rss) / 1024, 1), input_bytes=nbytes, run=int(rep),
             other_cpu_s=float(other),
             mb_per_s=(round(nbytes / 1e6 / wall, 1) if nbytes and wall > 0 else None)))
ncores = int(extra.get("cores", "1"))
runs = {}
for key, lst in all_runs.items():
    best = dict(min(lst, key=lambda r: r["wall_s"]))   # best of REPEAT runs
    best["runs"] = len(lst)
    best["worst_wall_s"] = max(r["wall_s"] for r in lst)
    best["peak_rss_mib"] = max(r["peak_rss_mib"] for r in lst)
    runs[key] = best
sizes = {}
for line in open(sizes_f):
    tool, metric, v = line.rstrip("\n").split("\t")
    sizes.setdefault(tool, {})[metric] = int(v)
# range reads: throughput from the tool's own bytes/seconds (best run)
rr = [tuple(v.split()) for k, v in extra.items() if k.startswith("ranges.")]
rr = [(int(b), float(t), m) for b, t, m in rr if float(t) > 0]
if rr and ("blobstore", "ranges") in runs:
    b, t, m = max(rr, key=lambda x: x[0] / x[1])
    r = runs[("blobstore", "ranges")]
    r.update(input_bytes=b, tool_seconds=t, mb_per_s=round(b / 1e6 / t, 1), tool_mb_per_s=m)

def fmt(v, nd=1):
    if v is None: return "n/a"
    if isinstance(v, str): return v
    return f"{v:,.{nd}f}"

def ratio(a, b):
    return round(a / b, 2) if (a is not None and b not in (None, 0)) else None

out = dict(corpus=corpus, input_bytes=dict(v1=v1_bytes, v2=v2_bytes, all=all_bytes),
           runs={f"{t}.{p}": v for (t, p), v in runs.items()},
           all_runs={f"{t}.{p}": v for (t, p), v in all_runs.items()}, sizes=sizes, extra=extra)

if sweep == "1":
    print()
    print(f"Chunk-size sweep (blobctl; cold ingest of v1 then v2, {all_bytes/1e6:,.1f} MB, into a fresh store)")
    hdr = (f"{'level':<8}{'min,avg,max (B)':<24}{'v1 MB/s':>9}{'v1+v2 MB/s':>11}{'CPU s':>8}{'RSS MiB':>9}"
           f"{'stored v1 MB':>13}{'stored v2 MB':>13}{'df stored MB':>13}")
    print(hdr); print("-" * len(hdr))
    rows = []
    for k, v in extra.items():
        if not k.startswith("sweep."): continue
        sid = k.split(".", 1)[1]
        level, mam = v.split(" ", 1)
        r1 = runs.get(("blobstore", f"sweep_v1_{sid}")); r2 = runs.get(("blobstore", f"sweep_v2_{sid}"))
        bs = sizes.get("blobstore", {})
        st1, st2 = bs.get(f"sweep_stored_v1_{sid}"), bs.get(f"sweep_stored_v2_{sid}")
        df = bs.get(f"df_storedBytes_sweep_{sid}")
        both = (round(all_bytes / 1e6 / (r1["wall_s"] + r2["wall_s"]), 1) if r1 and r2 else None)
        cpu = round(r1["cpu_s"] + r2["cpu_s"], 2) if r1 and r2 else None
        rss = max(r1["peak_rss_mib"], r2["peak_rss_mib"]) if r1 and r2 else None
        rows.append(dict(level=level, min_avg_max=mam, v1_mb_per_s=r1 and r1["mb_per_s"], v1v2_mb_per_s=both,
                         cpu_s=cpu, peak_rss_mib=rss, stored_v1_bytes=st1, stored_v2_bytes=st2, df_stored_v2_bytes=df))
        print(f"{level:<8}{mam:<24}{fmt(r1 and r1['mb_per_s']):>9}{fmt(both):>11}{fmt(cpu, 2):>8}{fmt(rss):>9}"
              f"{fmt(st1 and st1/1e6):>13}{fmt(st2 and st2/1e6):>13}{fmt(df and df/1e6):>13}")
    print("(stored = du -sb of the store; df stored = blobctl df storedBytes after v2)")
    out["sweep"] = rows
else:
    def mbs(tool, phase):
        r = runs.get((tool, phase)); return r and r["mb_per_s"]
    def stored(tool, m):
        return sizes.get(tool, {}).get(m)
    cols = ["blobstore", "restic", "borg", "borg10", "zstd", "sha256"]
    heads = ["blobstore", "restic", "borg zstd,3", "borg zstd,10", "zstd -3 -T0", "sha256"]
    rows = [("cold ingest v1 (MB/s)", "cold_v1", v1_bytes), ("cold ingest v2 (MB/s)", "cold_v2", v2_bytes),
            ("warm ingest (MB/s)", "warm", all_bytes), ("whole-blob reads (MB/s)", "read", all_bytes),
            ("  peers to /dev/null", "read_null", all_bytes),
            ("1MiB range reads (MB/s)", "ranges", None)]
    table = {}
    print()
    print(f"Input: v1 {v1_bytes/1e6:,.1f} MB (base, app-v1, small), v2 {v2_bytes/1e6:,.1f} MB "
          f"(app-v2, small-v2), all five {all_bytes/1e6:,.1f} MB; {extra.get('cores','?')} cores")
    hdr = f"{'':<26}" + "".join(f"{h:>13}" for h in heads) + "".join(f"{h:>11}" for h in ["b/borg", "b/borg10", "b/restic", "b/zstd"])
    print(hdr); print("-" * len(hdr))
    for label, phase, _ in rows:
        vals = {c: mbs(c, phase) for c in cols}
        if phase == "read_null":   # blobstore reads already go to /dev/null
            vals["blobstore"] = mbs("blobstore", "read")
        rat = {"blobstore/borg": ratio(vals["blobstore"], vals["borg"]),
               "blobstore/borg10": ratio(vals["blobstore"], vals["borg10"]),
               "blobstore/restic": ratio(vals["blobstore"], vals["restic"]),
               "blobstore/zstd": ratio(vals["blobstore"], vals["zstd"])}
        table[phase] = dict(mb_per_s=vals, ratios=rat)
        print(f"{label:<26}" + "".join(f"{fmt(vals[c]):>13}" for c in cols)
              + "".join(f"{fmt(v, 2):>11}" for v in rat.values()))
    for label, m in [("stored after v1 (MB)", "stored_v1"), ("stored after v2 (MB)", "stored_v2"),
                     ("  blobstore settled, v1", "settled_v1"), ("  blobstore settled, v2", "settled_v2")]:
        vals = {c: stored(c, m) for c in cols}
        if m.startswith("settled_"):   # the others' stored figures, beside blobstore's settled ones
            vals = {c: (stored(c, m) if c == "blobstore" else stored(c, m.replace("settled_", "stored_"))) for c in cols}
            if vals["blobstore"] is None: continue
        rat = {"blobstore/borg": ratio(vals["blobstore"], vals["borg"]),
               "blobstore/borg10": ratio(vals["blobstore"], vals["borg10"]),
               "blobstore/restic": ratio(vals["blobstore"], vals["restic"]),
               "blobstore/zstd": ratio(vals["blobstore"], vals["zstd"])}
        table[m] = dict(bytes=vals, ratios=rat)
        print(f"{label:<26}" + "".join(f"{fmt(vals[c] and vals[c]/1e6):>13}" for c in cols)
              + "".join(f"{fmt(v, 3):>11}" for v in rat.values()))
    print("(stored = du -sb of the repo/store dir; zstd column = zstd -3 of each v1 file, no dedup;"
          " floors run over the v1 files only)")
    if "latency.idle" in extra:
        def tail(v):  # p50 p99 max count [p99.9 over-10-ms]
            f = v.split()
            more = f", p99.9 {f[4]}, {f[5]} over 10 ms" if len(f) >= 6 else ""
            return f"{f[0]}/{f[1]}/{f[2]} ({f[3]} reads{more})"
        line = f"1 MiB range reads of app-v2, p50/p99/max ms: idle {tail(extra['latency.idle'])}"
        if "latency.settling" in extra:
            line += f"; while the settler rewrites it (idle priority) {tail(extra['latency.settling'])}; runs of 100, a process each"
        print(line)
    if "ranges_unsettled" in extra and ("blobstore", "ranges") in runs:
        u, u50, u99 = extra["ranges_unsettled"].split()
        settled = runs[("blobstore", "ranges")].get("mb_per_s")
        line = f"1 MiB range reads of base.tar: before settling {float(u):,.1f} MB/s (p50/p99 {u50}/{u99} ms), settled {fmt(settled)} MB/s"
        if settled: line += f" ({float(settled) / float(u):.2f}x)"
        if "ranges_cached" in extra:
            c = float(extra["ranges_cached"])
            line += f"; settled with the registry's 128 MiB chunk cache {c:,.1f} MB/s ({c / float(u):.2f}x)"
        print(line)
    bs = sizes.get("blobstore", {})
    if any(k.startswith("df_") for k in bs):
        print("blobctl df: " + ", ".join(f"{k[3:]}={v/1e6:,.1f} MB" for k, v in sorted(bs.items()) if k.startswith("df_")))
    out["table"] = table

    print()
    rep_note = f" (best of {extra.get('repeat')} runs; worst wall shown)" if extra.get("repeat", "1") != "1" else ""
    print("Per step: CPU seconds, peak RSS; 'other CPU' = CPU used by other processes meanwhile" + rep_note)
    hdr = (f"{'tool':<11}{'phase':<10}{'wall s':>8}{'user s':>8}{'sys s':>8}{'CPU s':>8}{'CPU/wall':>9}"
           f"{'RSS MiB':>9}{'MB/s':>10}{'other CPU':>10}" + (f"{'worst s':>9}" if rep_note else ""))
    print(hdr); print("-" * len(hdr))
    disturbed = []
    for (t, p), r in runs.items():
        util = r["cpu_s"] / r["wall_s"] if r["wall_s"] > 0 else None
        flag = r["other_cpu_s"] > 0.1 * ncores * max(r["wall_s"], 0.1)
        if flag: disturbed.append(f"{t} {p}")
        print(f"{t:<11}{p:<10}{r['wall_s']:>8.2f}{r['user_s']:>8.2f}{r['sys_s']:>8.2f}{r['cpu_s']:>8.2f}"
              f"{fmt(util, 2):>9}{r['peak_rss_mib']:>9.1f}{fmt(r['mb_per_s']):>10}"
              f"{r['other_cpu_s']:>9.2f}{'!' if flag else ' '}"
              + (f"{r['worst_wall_s']:>9.2f}" if rep_note else ""))
    if disturbed:
        print("WARNING: other processes used >10% of the machine during: " + ", ".join(disturbed)
              + " -- rerun on an idle machine (or with REPEAT=3).")
    out["disturbed_steps"] = disturbed

    # targets
    def check(name, value, limit, op):
        if value is None or limit is None:
            return dict(target=name, value=value, limit=limit, result="n/a")
        ok = value >= limit if op == ">=" else (value <= limit if op == "<=" else value < limit)
        return dict(target=name, value=round(value, 3), limit=round(limit, 3), result="PASS" if ok else "FAIL")
    b = lambda p: mbs("blobstore", p)
    rss = [r["peak_rss_mib"] for (t, p), r in runs.items() if t == "blobstore"]
    borg_v1, borg_v2 = stored("borg", "stored_v1"), stored("borg", "stored_v2")
    borg10_v1, borg10_v2 = stored("borg10", "stored_v1"), stored("borg10", "stored_v2")
    settled = lambda m: stored("blobstore", m) and stored("blobstore", m) / 1e6
    targets = [
        check("settled v1 <= 0.90x borg zstd,3 (MB)", settled("settled_v1"), borg_v1 and 0.90 * borg_v1 / 1e6, "<="),
        check("settled v2 <= 0.90x borg zstd,3 (MB)", settled("settled_v2"), borg_v2 and 0.90 * borg_v2 / 1e6, "<="),
        check("settled v1 <= 1.0x borg zstd,10 (MB)", settled("settled_v1"), borg10_v1 and borg10_v1 / 1e6, "<="),
        check("settled v2 <= 1.0x borg zstd,10 (MB)", settled("settled_v2"), borg10_v2 and borg10_v2 / 1e6, "<="),
        check("cold ingest v1 >= 2x borg (MB/s)", b("cold_v1"), mbs("borg", "cold_v1") and 2 * mbs("borg", "cold_v1"), ">="),
        check("cold ingest v1 >= 0.9x zstd -3 -T0 (MB/s)", b("cold_v1"), mbs("zstd", "cold_v1") and 0.9 * mbs("zstd", "cold_v1"), ">="),
        check("warm ingest >= 1.5x restic re-backup (MB/s)", b("warm"), mbs("restic", "warm") and 1.5 * mbs("restic", "warm"), ">="),
        check("whole-blob reads >= 3x restic restore (MB/s)", b("read"), mbs("restic", "read") and 3 * mbs("restic", "read"), ">="),
        check("stored after v1 <= 0.95x borg (MB)", stored("blobstore", "stored_v1") and stored("blobstore", "stored_v1") / 1e6,
              borg_v1 and 0.95 * borg_v1 / 1e6, "<="),
        check("stored after v2 <= 0.95x borg (MB)", stored("blobstore", "stored_v2") and stored("blobstore", "stored_v2") / 1e6,
              borg_v2 and 0.95 * borg_v2 / 1e6, "<="),
        check("peak RSS < 256 MiB (blobstore, all phases)", max(rss) if rss else None, 256, "<"),
    ]
    if "latency.settling" in extra:
        targets.append(check("p99 of 1 MiB reads while settling <= 10 ms", float(extra["latency.settling"].split()[1]), 10, "<="))
    if "ranges_unsettled" in extra and runs.get(("blobstore", "ranges"), {}).get("mb_per_s"):
        fast = float(extra["ranges_unsettled"].split()[0])
        targets.append(check("settled range reads >= 0.8x fast tier (MB/s)", runs[("blobstore", "ranges")]["mb_per_s"], 0.8 * fast, ">="))
    out["targets"] = targets
    print()
    print("Targets")
    for t in targets:
        print(f"  [{t['result']:>4}] {t['target']:<46} value {fmt(t['value'])}  limit {fmt(t['limit'])}")
    print()
    ran = {t for (t, _p) in runs}
    notes = []
    if "restic" in ran:
        notes.append("restic: repo format v%s, compression auto (zstd), AES-256/Poly1305 encryption (mandatory); "
                     "backups run with --force (no parent shortcut); restore writes files to a target dir."
                     % extra.get("restic.repo_version", "?"))
        notes.append("restic: every command pays a fixed repo-open + scrypt key-derivation cost "
                     "(`restic cat config`: %s s wall), included in its figures."
                     % runs.get(("restic", "open"), {}).get("wall_s", "?"))
    if "borg" in ran:
        notes.append("borg: --encryption=none, --compression zstd,3, --files-cache=disabled (so it re-reads "
                     "unchanged files), default chunker (~2 MiB avg); extract writes files to a target dir.")
    if ran & {"restic", "borg"}:
        notes.append("'peers to /dev/null' = restic dump latest / and borg extract --stdout (reference only; "
                     "the read target uses restic restore).")
    if "blobstore" in ran:
        notes.append("blobstore: whole-blob reads are `get DIGEST > /dev/null`; range reads are bench-ranges "
                     "over base.tar (MB/s from its own bytes/seconds).")
    notes.append("each step runs %s after a `cat FILES > /dev/null` warm-up; the page cache is not dropped."
                 % ("once" if extra.get("repeat", "1") == "1" else "%s times (fresh repos), best shown" % extra["repeat"]))
    for n in notes: print("note: " + n)
    out["notes"] = notes

if out_json:
    with open(out_json, "w") as fh:
        json.dump(out, fh, indent=2)
    print(f"\nJSON written to {out_json}")
EOF
log "done in $(( $(date +%s) - START )) s"

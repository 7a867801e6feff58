#!/usr/bin/env bash
# bench/gc-bench.sh
#
# Garbage-collection benchmark: BlobStore (`blobbench gc`) next to restic and borg
# on comparable repositories, in one run.
#
#   blobstore  stores of 1k, 10k and 100k small blobs (4-16 KiB, random) plus one
#              image; remove one container (its diff and its anonymous volume's
#              snapshot become garbage) and collect: median wall ms of REPEAT rounds.
#              Then 10k containers with a diff each: remove them all, one collect.
#   restic     back up a directory of the same N files (`blobbench files`, same
#              seed: same bytes), back up a small extra directory (2 files) as a
#              second snapshot, `restic forget` it and time `restic prune`.
#   borg       the same with `borg create`, `borg delete` and `borg compact`.
#
# Environment:
#   BLOBBENCH=PATH   blobbench binary (default REPO/.build/release/blobbench, built
#                    with `swift build -c release --product blobbench` when missing,
#                    older than a source file, or BUILD=1; waits for a running
#                    swift build first)
#   BLOBS=LIST       store sizes for blobstore (default 1000,10000,100000)
#   PEER_BLOBS=LIST  repository sizes for restic and borg (default: BLOBS)
#   CONTAINERS=N     containers for the remove-many case (default 10000; 0 skips)
#   REPEAT=N         remove+collect rounds per store size (default 7; median shown)
#   TOOLS=LIST       comma list of blobstore,restic,borg (default: all)
#   PEER_BUDGET=S    a peer size is skipped when its run, extrapolated linearly
#                    from the previous size, would take longer than S seconds
#                    (default 300)
#   OUT_JSON=FILE    also write all figures as JSON to FILE
#   BENCH_TMPDIR=DIR parent of the scratch dir (default /work/tmp-bench if /work
#                    exists, else ${TMPDIR:-/tmp}); removed at the end unless KEEP=1
#
# Wall times come from `date +%s%N` around each command, so the peers' figures
# include their process start-up (tens of ms for restic, a few hundred for borg);
# blobstore's are taken inside one process around the two library calls.
set -euo pipefail
export LC_ALL=C

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)
BLOBBENCH=${BLOBBENCH:-$REPO_DIR/.build/release/blobbench}
BLOBS=${BLOBS:-1000,10000,100000}
PEER_BLOBS=${PEER_BLOBS:-$BLOBS}
CONTAINERS=${CONTAINERS:-10000}
REPEAT=${REPEAT:-7}
TOOLS=${TOOLS:-blobstore,restic,borg}
PEER_BUDGET=${PEER_BUDGET:-300}
KEEP=${KEEP:-0}
SEED=1
# Extra-snapshot files are fill blobs far past any N, so they are new to the repository.
EXTRA_FIRST=1000000000

log() { printf '[gc-bench] %s\n' "$*" >&2; }
die() { printf '[gc-bench] ERROR: %s\n' "$*" >&2; exit 1; }
want() { [[ ",$TOOLS," == *",$1,"* ]]; }

# ------------------------------------------------------------ prerequisites ---
. "$SCRIPT_DIR/lib.sh" # ensure COMMAND PACKAGE
PY=python3; command -v "$PY" >/dev/null 2>&1 || ensure python3 python3-minimal
want restic && ensure restic restic
want borg && ensure borg borgbackup

# blobbench is needed even for peers only: `blobbench files` writes their data.
# Rebuilt when missing, older than a source file or Package.swift, or BUILD=1; a
# swift build already running (on a shared machine) is waited for first.
needs_build() {
  [ "${BUILD:-0}" = 1 ] || [ ! -x "$BLOBBENCH" ] && return 0
  [ "$BLOBBENCH" = "$REPO_DIR/.build/release/blobbench" ] || return 1
  [ -n "$(find "$REPO_DIR/Sources" "$REPO_DIR/Package.swift" -newer "$BLOBBENCH" -type f -print -quit)" ]
}
if needs_build; then
  while pgrep -f swift-build >/dev/null 2>&1; do log "waiting for a running swift build"; sleep 15; done
  log "building blobbench: swift build -c release --product blobbench"
  (cd "$REPO_DIR" && swift build -c release --product blobbench >&2) || die "swift build failed"
fi
[ -x "$BLOBBENCH" ] || die "no blobbench at $BLOBBENCH"

# ------------------------------------------------------------------ scratch ---
if [ -n "${BENCH_TMPDIR:-}" ]; then PARENT=$BENCH_TMPDIR
elif [ -d /work ]; then PARENT=/work/tmp-bench
else PARENT=${TMPDIR:-/tmp}; fi
mkdir -p "$PARENT"
T=$(mktemp -d "$PARENT/gc-bench.XXXXXX")
cleanup() { if [ "$KEEP" = 1 ]; then log "kept $T"; else rm -rf "$T"; fi; }
trap cleanup EXIT
RESULTS=$T/results.tsv   # tool, N, metric, value
: > "$RESULTS"
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$RESULTS"; }

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# timed VAR CMD...: runs CMD with its output in $T/last.log, sets VAR to its wall ms.
timed() {
  local var=$1; shift
  local t0; t0=$(now_ms)
  if ! "$@" > "$T/last.log" 2>&1; then
    tail -20 "$T/last.log" >&2
    die "failed: $*"
  fi
  printf -v "$var" '%s' $(( $(now_ms) - t0 ))
}

START=$(now_ms)

# ---------------------------------------------------------------- blobstore ---
if want blobstore; then
  log "blobbench gc --blobs $BLOBS --containers $CONTAINERS --repeat $REPEAT"
  "$BLOBBENCH" gc --blobs "$BLOBS" --containers "$CONTAINERS" --repeat "$REPEAT" \
    --seed "$SEED" --scratch "$T" --json-out "$T/blobbench.json" > "$T/blobbench.txt"
fi

# -------------------------------------------------------------------- peers ---
restic_run() { # restic_run N: repository of data-N, forget extra-N's snapshot, prune
  local n=$1 ms
  export RESTIC_REPOSITORY=$T/restic-$n RESTIC_PASSWORD=bench RESTIC_CACHE_DIR=$T/restic-cache
  restic init -q > /dev/null
  timed ms restic backup -q "$T/data-$n"; record restic "$n" fill_ms "$ms"
  restic backup -q --tag extra "$T/extra-$n" > /dev/null
  local id
  id=$(restic snapshots --json --tag extra | "$PY" -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
  timed ms restic forget "$id"; record restic "$n" forget_ms "$ms"
  timed ms restic prune; record restic "$n" prune_ms "$ms"
  record restic "$n" repo_bytes "$(du -sb "$RESTIC_REPOSITORY" | cut -f1)"
  rm -rf "$RESTIC_REPOSITORY" "$RESTIC_CACHE_DIR"
}

borg_run() { # borg_run N: the same with borg create / delete / compact
  local n=$1 ms repo=$T/borg-$n
  export BORG_BASE_DIR=$T/borg-base BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes \
         BORG_RELOCATED_REPO_ACCESS_IS_OK=yes BORG_DELETE_I_KNOW_WHAT_I_AM_DOING=YES
  borg init --encryption=none "$repo" > /dev/null 2>&1
  timed ms borg create --compression zstd,3 "$repo::base" "$T/data-$n"; record borg "$n" fill_ms "$ms"
  borg create --compression zstd,3 "$repo::extra" "$T/extra-$n" > /dev/null 2>&1
  timed ms borg delete "$repo::extra"; record borg "$n" forget_ms "$ms"
  timed ms borg compact "$repo"; record borg "$n" prune_ms "$ms"
  record borg "$n" repo_bytes "$(du -sb "$repo" | cut -f1)"
  rm -rf "$repo" "$BORG_BASE_DIR"
}

if want restic || want borg; then
  PREV_N=0; PREV_S=0
  for n in ${PEER_BLOBS//,/ }; do
    # Skip a size whose run would blow the budget, judging by the previous size.
    if [ "$PREV_N" -gt 0 ]; then
      predicted=$(( PREV_S * n / PREV_N ))
      if [ "$predicted" -gt "$PEER_BUDGET" ]; then
        log "peers at $n files: skipped (about ${predicted}s predicted, PEER_BUDGET=${PEER_BUDGET}s)"
        record peers "$n" skipped "$predicted"
        continue
      fi
    fi
    t0=$(now_ms)
    log "peers at $n files: writing data"
    "$BLOBBENCH" files --count "$n" --dir "$T/data-$n" --seed "$SEED"
    "$BLOBBENCH" files --count 2 --first "$EXTRA_FIRST" --dir "$T/extra-$n" --seed "$SEED"
    if want restic; then log "peers at $n files: restic"; restic_run "$n"; fi
    if want borg; then log "peers at $n files: borg"; borg_run "$n"; fi
    rm -rf "$T/data-$n" "$T/extra-$n"
    PREV_N=$n; PREV_S=$(( ($(now_ms) - t0) / 1000 + 1 ))
  done
fi

TOTAL_S=$(( ($(now_ms) - START) / 1000 ))

# ------------------------------------------------------------------- report ---
"$PY" - "$RESULTS" "$T/blobbench.json" "$TOTAL_S" "${OUT_JSON:-}" <<'EOF'
import json, os, sys
results_path, bb_path, total_s, out_json = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
peers = {}
skipped = {}
for line in open(results_path):
    tool, n, metric, value = line.rstrip("\n").split("\t")
    if tool == "peers":
        skipped[int(n)] = int(value)
    else:
        peers.setdefault(tool, {}).setdefault(int(n), {})[metric] = int(value)
bb = json.load(open(bb_path)) if os.path.exists(bb_path) else None
removal = {f["blobs"]: f for f in (bb["removal"] if bb else [])}
sizes = sorted(set(removal) | {n for t in peers.values() for n in t} | set(skipped))

def ms(v, digits=0):
    return "-" if v is None else f"{v:.{digits}f}"

def peer(tool, n, metric):
    if n in skipped and n not in peers.get(tool, {}):
        return "skipped"
    return ms(peers.get(tool, {}).get(n, {}).get(metric))

print("Remove one container and collect its garbage (blobstore), or forget one small")
print("snapshot and reclaim its space (restic prune, borg compact). Wall milliseconds.")
print()
head = ["items", "bs rm", "bs gc", "bs rm+gc", "restic forget", "restic prune", "borg delete", "borg compact",
        "fill s: bs", "restic", "borg"]
w = [8, 8, 8, 9, 13, 12, 11, 12, 10, 7, 7]
print(" ".join(h.rjust(x) for h, x in zip(head, w)))
for n in sizes:
    f = removal.get(n)
    def fill(tool):
        v = peers.get(tool, {}).get(n, {}).get("fill_ms")
        return "skipped" if v is None and n in skipped else ms(None if v is None else v / 1000, 1)
    row = [str(n),
           ms(f and f["medianRemoveMs"], 2), ms(f and f["medianCollectMs"], 2), ms(f and f["medianTotalMs"], 2),
           peer("restic", n, "forget_ms"), peer("restic", n, "prune_ms"),
           peer("borg", n, "forget_ms"), peer("borg", n, "prune_ms"),
           ms(f and f["fill"]["milliseconds"] / 1000, 1), fill("restic"), fill("borg")]
    print(" ".join(c.rjust(x) for c, x in zip(row, w)))
for n, p in sorted(skipped.items()):
    print(f"  peers at {n}: skipped, about {p} s predicted (over PEER_BUDGET)")
if bb and bb.get("many"):
    m = bb["many"]
    print()
    print(f"Remove {m['containers']} containers (one transaction each), then one gc (blobstore only):")
    print(f"  remove all {m['removeAllMs']:.0f} ms ({m['removeAllMs'] / max(1, m['containers']):.3f} ms each), "
          f"collect {m['collectMs']:.0f} ms for {m['blobsFreed']} blobs / {m['chunksFreed']} chunks "
          f"({m['collectMs'] * 1000 / max(1, m['blobsFreed']):.1f} us per blob); {m['blobsLeft']} blobs left (the image's)")
    print("  restic/borg not run: the counterpart, forgetting 10k snapshots, is no single prune of one change.")
print()
print("bs = blobstore: median of", bb["repeats"] if bb else "-", "rounds, timed in-process around removeContainer and")
print("GarbageCollector.collect (each commits one durable LMDB transaction). Its gc visits the")
print("garbage queue, not the store, so its figures should not grow with the store. restic prune")
print("and borg compact read the repository's index and pack/segment lists and rewrite what they")
print("drop, so they grow with the repository; their figures include process start-up. 'fill'")
print("is the untimed set-up: blobstore puts (one blob per put), restic backup, borg create.")
print(f"Whole run {total_s} s on {os.cpu_count()} cores.")
if out_json:
    json.dump({"blobstore": bb, "peers": {t: {str(n): v for n, v in d.items()} for t, d in peers.items()},
               "skipped": {str(n): s for n, s in skipped.items()}, "totalSeconds": total_s},
              open(out_json, "w"), indent=2, sort_keys=True)
EOF

if [ -s "$T/blobbench.txt" ]; then
  echo
  echo "blobbench gc:"
  cat "$T/blobbench.txt"
fi

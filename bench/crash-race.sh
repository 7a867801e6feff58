#!/usr/bin/env bash
# bench/crash-race.sh [--rounds N] [--seconds S] [--workdir DIR] [--keep]
#                     [--no-repair] [--no-settle] [--no-kill] [--writers N] [--seed N]
#
# Crash-and-race harness: proves that no committed blob is ever lost while
# writers, a remover, `gc` and `fsck --repair` race each other and processes
# are SIGKILLed at random instants.
#
#   BLOBCTL=/path/to/blobctl bash bench/crash-race.sh --rounds 30 --seconds 4
#
# Each round, on a fresh store (`blobctl init` with small chunks and a small
# pack size limit, so compaction and pack rotation happen often):
#   - 2-4 writer loops `blobctl put FILE` of a pool of data files that share
#     256 KiB blocks (so chunks dedup across files; made once per run, seeded);
#   - 1 remover loop: picks a committed digest, reads it back (`get`, compared
#     with its source file), then `blobctl rm` it;
#   - 1 gc loop: `blobctl gc` over and over (with `--compact-threshold 0.1` when
#     the binary has that option; GC_ARGS overrides);
#   - 1 repair loop: `blobctl fsck --repair --quick` every 1-2 s (--no-repair
#     leaves it out; REPAIR_ARGS overrides the arguments);
#   - 1 settle loop: `blobctl settle --full-speed --threshold 0 --level 6` over
#     and over, recompressing the packs the writers fill (when the binary has
#     `settle`; --no-settle leaves it out; SETTLE_ARGS overrides the arguments);
#   - a killer: every 100-600 ms SIGKILLs the running blobctl of one random loop
#     (writers, gc, repair, settle and the remover); the loop itself survives and goes
#     on with its next command (--no-kill: no killer).
# After S seconds the loops are stopped (waited for; a loop still busy after
# HANG_TIMEOUT s counts as a hang) and the round is checked:
#   1. every digest expected present reads back byte-exact (`get -o`, sha256 of
#      the output = the digest, and `cmp` with the source file): else lost
#      (get fails) or wrong (content differs);
#   2. a full `blobctl fsck` exits 0 and says "store is healthy";
#   3. space is reclaimed: `rm` of every blob `ls --json` lists, `gc` twice,
#      then `df --json` shows 0 blobs and 0 chunks and $STORE/packs holds at
#      most RECLAIM_LIMIT bytes (default 1 MiB); a full fsck must still pass.
# One line per round, then a TOTAL line; exit 0 only when every round is clean.
# A failing round's directory (store, ledger, logs) is kept and its path
# printed; with --keep everything is kept. Otherwise the scratch dir goes.
#
# ---- The ledger, and why its verdicts are sound --------------------------
# Every file has a known digest (its sha256) and a lock file. A writer holds a
# SHARED flock on that lock around `put` and appends "put D" to the round's
# ledger, still under the lock, only when put exited 0 and printed D. The
# remover holds the EXCLUSIVE flock around its read-back and `rm`, and appends
# "rm D" (rm exited 0), "rm? D" (rm killed or failed in another way: it may or
# may not have happened) or "gone D" (rm or get exited 3, not found). So puts
# of one digest may overlap each other (dedup races are part of the test) but
# never an rm of it, and for each digest the ledger order is the execution
# order of its completed puts and rms. A digest's expected state is given by
# its last event: put -> present, rm/gone -> absent, rm? -> ambiguous (not
# checked; it becomes definite again with the next put or rm). A killed or
# failed put changes no expectation: it may or may not have committed (an
# extra blob is never a failure), but it must not lose a blob committed
# before, so a digest whose last event is a put stays expected present
# whatever happened to later puts of the same bytes. Under its exclusive lock
# the remover's state is definite, so when the ledger says present and its
# `get` fails (any exit but 137) or returns other bytes, or `rm` says not
# found, that is a loss seen mid-round ("midlost"/"midwrong" lines) -- a loss
# that a later re-put could otherwise hide from the end-of-round check.
# gc and repair are not serialized with anything: they are what is tested.
#
# Counters: "committed" = puts that exited 0 with the right digest; "verified"
# = read-backs that matched (end-of-round checks plus the remover's reads
# before each rm); "lost"/"wrong" include the remover's mid-round findings.
#
# Environment:
#   BLOBCTL=PATH        blobctl binary (default REPO/.build/release/blobctl)
#   INIT_ARGS="..."     `blobctl init` options (default: 4K/16K/64K chunks,
#                       1 MiB packs, zstd level 1, for what the binary supports)
#   GC_ARGS="..."       `blobctl gc` options (default --compact-threshold 0.1
#                       when supported, else none)
#   REPAIR_ARGS="..."   `blobctl fsck` options of the repair loop (default
#                       --repair --quick, --quick only when supported)
#   NFILES=N            data files (default 8; 1-6 MiB each)
#   KILL_REMOVER=0      the killer spares the remover (default 1: kills it too)
#   HANG_TIMEOUT=S      seconds the loops get to finish after the race (120)
#   RECLAIM_LIMIT=B     bytes allowed in packs/ after everything is removed
#                       (default 1048576)
#   BENCH_TMPDIR=DIR    parent of the scratch dir when --workdir is not given
#                       (default /work/tmp-bench if /work exists, else $TMPDIR)
set -uo pipefail
export LC_ALL=C

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)

log() { printf '[crash-race] %s\n' "$*" >&2; }
die() { printf '[crash-race] ERROR: %s\n' "$*" >&2; exit 2; }
. "$SCRIPT_DIR/lib.sh" # ensure, scratch_parent

usage() { sed -n '2,3p;9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

ROUNDS=30 RACE_SECS=4 WORKDIR="" KEEP=0 REPAIR=1 SETTLE=1 KILL=1 WRITERS="" SEED=1
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) ROUNDS=${2:?--rounds needs a value}; shift 2 ;;
    --rounds=*) ROUNDS=${1#*=}; shift ;;
    --seconds) RACE_SECS=${2:?--seconds needs a value}; shift 2 ;;
    --seconds=*) RACE_SECS=${1#*=}; shift ;;
    --workdir) WORKDIR=${2:?--workdir needs a value}; shift 2 ;;
    --workdir=*) WORKDIR=${1#*=}; shift ;;
    --writers) WRITERS=${2:?--writers needs a value}; shift 2 ;;
    --writers=*) WRITERS=${1#*=}; shift ;;
    --seed) SEED=${2:?--seed needs a value}; shift 2 ;;
    --seed=*) SEED=${1#*=}; shift ;;
    --keep) KEEP=1; shift ;;
    --no-repair) REPAIR=0; shift ;;
    --no-settle) SETTLE=0; shift ;;
    --no-kill) KILL=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive integer"
[[ $RACE_SECS =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--seconds must be a number"
[[ $SEED =~ ^[0-9]+$ ]] || die "--seed must be a non-negative integer"
[ -z "$WRITERS" ] || [[ $WRITERS =~ ^[1-9][0-9]*$ ]] || die "--writers must be a positive integer"
NFILES=${NFILES:-8}
[[ $NFILES =~ ^[1-9][0-9]*$ ]] || die "NFILES must be a positive integer"
KILL_REMOVER=${KILL_REMOVER:-1}
HANG_TIMEOUT=${HANG_TIMEOUT:-120}
RECLAIM_LIMIT=${RECLAIM_LIMIT:-1048576}

BLOBCTL=${BLOBCTL:-$REPO_DIR/.build/release/blobctl}
[ -x "$BLOBCTL" ] || die "no blobctl at $BLOBCTL (set BLOBCTL=)"
BLOBCTL=$(realpath "$BLOBCTL")
command -v python3 >/dev/null 2>&1 || ensure python3 python3-minimal
ensure flock util-linux
ensure pgrep procps
ensure sha256sum coreutils
ensure cmp diffutils

# ------------------------------------------------------- options of blobctl ---
has_opt() { "$BLOBCTL" "$1" --help 2>&1 | grep -q -- "$2"; }
if [ -n "${INIT_ARGS+x}" ]; then
  read -ra INIT_OPTS <<< "$INIT_ARGS"
else
  INIT_OPTS=()
  has_opt init --avg-chunk && INIT_OPTS+=(--min-chunk 4096 --avg-chunk 16384 --max-chunk 65536)
  has_opt init --pack-size && INIT_OPTS+=(--pack-size 1048576)
  has_opt init --level && INIT_OPTS+=(--level 1)
fi
if [ -n "${GC_ARGS+x}" ]; then
  read -ra GC_OPTS <<< "$GC_ARGS"
else
  GC_OPTS=()
  has_opt gc --compact-threshold && GC_OPTS+=(--compact-threshold 0.1)
fi
if [ -n "${REPAIR_ARGS+x}" ]; then
  read -ra REPAIR_OPTS <<< "$REPAIR_ARGS"
else
  REPAIR_OPTS=(--repair)
  has_opt fsck --quick && REPAIR_OPTS+=(--quick)
fi
if [ -n "${SETTLE_ARGS+x}" ]; then
  read -ra SETTLE_OPTS <<< "$SETTLE_ARGS"
else
  SETTLE_OPTS=(--full-speed --threshold 0 --level 6)
fi
has_opt settle --level || SETTLE=0 # binaries from before the settler
log "blobctl $BLOBCTL"
log "init ${INIT_OPTS[*]:-(defaults)}; gc ${GC_OPTS[*]:-(defaults)}; repair loop: $([ "$REPAIR" = 1 ] && echo "fsck ${REPAIR_OPTS[*]}" || echo off); settle loop: $([ "$SETTLE" = 1 ] && echo "settle ${SETTLE_OPTS[*]}" || echo off); killer: $([ "$KILL" = 1 ] && echo on || echo off)"

# --------------------------------------------------------- scratch, cleanup ---
if [ -n "$WORKDIR" ]; then mkdir -p "$WORKDIR" || die "cannot create $WORKDIR"; PARENT=$(realpath "$WORKDIR")
else PARENT=$(scratch_parent); fi
T=$(mktemp -d "$PARENT/crash-race.XXXXXX") || die "mktemp in $PARENT failed"
FAILED_ROUNDS=()
BG_PIDS=()   # loops and killer of the current round

# stop_pids PID...: SIGKILLs each loop and every child it has (stopped first, so it
# cannot start another child in between), then reaps them.
stop_pids() {
  local p kids
  for p in "$@"; do
    kill -STOP "$p" 2>/dev/null || continue
    kids=$(pgrep -P "$p" 2>/dev/null | tr '\n' ' ')
    kill -KILL "$p" $kids 2>/dev/null
  done
  for p in "$@"; do { wait "$p"; } 2>/dev/null; done
  return 0
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ -n "${RUN:-}" ] && touch "$RUN/stop" 2>/dev/null
  [ ${#BG_PIDS[@]} -gt 0 ] && stop_pids "${BG_PIDS[@]}"
  if [ "$KEEP" = 1 ] || [ "$rc" != 0 ] || [ ${#FAILED_ROUNDS[@]} -gt 0 ]; then
    log "kept scratch dir $T"
  else
    rm -rf "$T"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ helpers ---
hbytes() { awk -v b="$1" 'BEGIN { if (b < 1024) printf "%d B", b; else if (b < 1048576) printf "%.1f KiB", b/1024; else printf "%.1f MiB", b/1048576 }'; }
rand_sleep() { # rand_sleep MIN_MS MAX_MS
  local ms=$(( $1 + RANDOM % ($2 - $1 + 1) ))
  sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
}

# ------------------------------------------------------------- data files ---
# NFILES files of 1-6 MiB: a unique 0-64 KiB prefix, then 4-24 blocks of 256 KiB,
# 1-3 of them unique to the file and the rest drawn (in random order, repeats
# allowed) from 16 blocks every file shares.
DATA=$T/data
mkdir -p "$DATA"
python3 - "$DATA" "$NFILES" "$SEED" <<'EOF' || die "could not write the data files"
import random, sys
out, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
B = 256 << 10
shared = [rng.randbytes(B) for _ in range(16)]
for i in range(n):
    nblocks = rng.randint(4, 23)
    nunique = rng.randint(1, 3)
    blocks = [rng.choice(shared) for _ in range(nblocks - nunique)]
    for _ in range(nunique):
        blocks.insert(rng.randint(0, len(blocks)), rng.randbytes(B))
    with open(f"{out}/f{i:02d}.bin", "wb") as f:
        f.write(rng.randbytes(rng.randint(1, 65536)))
        for b in blocks:
            f.write(b)
EOF
FILES=() DIGESTS=()
for ((i = 0; i < NFILES; i++)); do
  f=$(printf '%s/f%02d.bin' "$DATA" "$i")
  FILES+=("$f")
  DIGESTS+=("sha256:$(sha256sum "$f" | cut -d' ' -f1)")
done
[ "$(printf '%s\n' "${DIGESTS[@]}" | sort -u | wc -l)" = "$NFILES" ] || die "data files are not distinct"
log "data: $NFILES files, $(hbytes "$(cat "${FILES[@]}" | wc -c)") in $DATA"

# ------------------------------------------------------------------- loops ---
# Every loop runs in the background with RUN, STORE set; its blobctl children are
# started by run_bc, which leaves "CHILD LOOP" in $RUN/pid.NAME for the killer.
# run_bc NAME OUT ERR ARGS...: sets RC to blobctl's exit status (137 = SIGKILL).
run_bc() {
  local name=$1 out=$2 err=$3 c; shift 3
  "$BLOBCTL" --store "$STORE" "$@" > "$out" 2> "$err" &
  c=$!
  echo "$c $BASHPID" > "$RUN/pid.$name"
  { wait "$c"; } 2>/dev/null; RC=$?
  rm -f "$RUN/pid.$name"
}
# note NAME RC ERRFILE: one line in $RUN/log.NAME (ok, killed or fail RC), and
# the first line of stderr in $RUN/errors for a failure.
note() {
  case $2 in
    0) echo ok >> "$RUN/log.$1" ;;
    137) echo killed >> "$RUN/log.$1" ;;
    *) echo "fail $2" >> "$RUN/log.$1"; echo "$1 rc=$2: $(head -c 300 "$3" | head -1)" >> "$RUN/errors" ;;
  esac
}
# state_of D: the digest's expected state from the ledger: present, absent,
# ambiguous or none (never committed).
state_of() {
  awk -v d="$1" '$2 == d { if ($1 == "put") s = "present"; else if ($1 == "rm" || $1 == "gone") s = "absent"; else if ($1 == "rm?") s = "ambiguous" }
                 END { print (s == "" ? "none" : s) }' "$RUN/ledger"
}

writer_loop() { # writer_loop N
  local name=writer$1 idx d lfd
  RANDOM=$(( SEED * 7919 + ROUND * 131 + $1 ))
  while [ ! -e "$RUN/stop" ]; do
    idx=$(( RANDOM % NFILES ))
    exec {lfd}> "$RUN/locks/$idx"
    flock -s "$lfd"
    run_bc "$name" "$RUN/out.$name" "$RUN/err.$name" put "${FILES[idx]}"
    note "$name" "$RC" "$RUN/err.$name"
    if [ "$RC" = 0 ]; then
      d=$(head -1 "$RUN/out.$name")
      if [ "$d" = "${DIGESTS[idx]}" ]; then
        echo "put $d $idx $name" >> "$RUN/ledger"
      else
        echo "badput ${DIGESTS[idx]} $idx $name printed '$d'" >> "$RUN/ledger"
      fi
    fi
    exec {lfd}>&-
  done
}

remover_loop() {
  local name=remover idx d st lfd cands flagged
  RANDOM=$(( SEED * 7919 + ROUND * 131 + 97 ))
  while [ ! -e "$RUN/stop" ]; do
    rand_sleep 50 250
    [ -e "$RUN/stop" ] && break
    # candidates: files whose digest was committed and is not known to be gone
    cands=$(awk '{ if ($1 == "put") s[$3] = 1; else if ($1 == "rm" || $1 == "gone") s[$3] = 0; else if ($1 == "rm?") s[$3] = 1 }
                 END { for (i in s) if (s[i]) print i }' "$RUN/ledger" | tr '\n' ' ')
    read -ra cands <<< "$cands"
    [ ${#cands[@]} -gt 0 ] || continue
    idx=${cands[RANDOM % ${#cands[@]}]}
    d=${DIGESTS[idx]}
    exec {lfd}> "$RUN/locks/$idx"
    if ! flock -x -w 2 "$lfd"; then exec {lfd}>&-; continue; fi
    st=$(state_of "$d")   # definite: no put of d runs while we hold the lock
    flagged=0
    if [ "$st" = present ]; then
      run_bc "$name" "$RUN/remover.get" "$RUN/err.$name" get "$d" -o "$RUN/remover.blob"
      case $RC in
        0) if cmp -s "$RUN/remover.blob" "${FILES[idx]}"; then echo verified >> "$RUN/log.verify"
           else echo "midwrong $d $idx" >> "$RUN/ledger"; fi ;;
        137) exec {lfd}>&-; continue ;;   # killed read: no verdict, try again later
        *) echo "midlost $d $idx get-rc=$RC $(head -1 "$RUN/err.$name")" >> "$RUN/ledger"; flagged=1
           if [ "$RC" = 3 ]; then echo "gone $d $idx" >> "$RUN/ledger"; exec {lfd}>&-; continue; fi ;;
      esac
      rm -f "$RUN/remover.blob"
    fi
    [ "$st" = present ] || [ "$st" = ambiguous ] || { exec {lfd}>&-; continue; }
    run_bc "$name" "$RUN/out.$name" "$RUN/err.$name" rm "$d"
    note "$name" "$RC" "$RUN/err.$name"
    case $RC in
      0) echo "rm $d $idx" >> "$RUN/ledger" ;;
      3) [ "$st" = present ] && [ "$flagged" = 0 ] && echo "midlost $d $idx rm-rc=3" >> "$RUN/ledger"
         echo "gone $d $idx" >> "$RUN/ledger" ;;
      *) echo "rm? $d $idx rc=$RC" >> "$RUN/ledger" ;;
    esac
    exec {lfd}>&-
  done
}

gc_loop() {
  RANDOM=$(( SEED * 7919 + ROUND * 131 + 98 ))
  while [ ! -e "$RUN/stop" ]; do
    run_bc gc "$RUN/out.gc" "$RUN/err.gc" gc "${GC_OPTS[@]}"
    note gc "$RC" "$RUN/err.gc"
    rand_sleep 0 300
  done
}

settle_loop() {
  RANDOM=$(( SEED * 7919 + ROUND * 131 + 97 ))
  while [ ! -e "$RUN/stop" ]; do
    run_bc settle "$RUN/out.settle" "$RUN/err.settle" settle "${SETTLE_OPTS[@]}"
    note settle "$RC" "$RUN/err.settle"
    rand_sleep 0 300
  done
}

repair_loop() {
  local i
  RANDOM=$(( SEED * 7919 + ROUND * 131 + 99 ))
  while [ ! -e "$RUN/stop" ]; do
    for ((i = 0; i < 5; i++)); do rand_sleep 200 400; [ -e "$RUN/stop" ] && return; done
    run_bc repair "$RUN/out.repair" "$RUN/err.repair" fsck "${REPAIR_OPTS[@]}"
    note repair "$RC" "$RUN/err.repair"
    [ "$RC" = 0 ] && grep -q '^repaired' "$RUN/out.repair" && { echo "--- $(date +%T.%N)"; cat "$RUN/out.repair"; } >> "$RUN/repairs.log"
  done
}

killer_loop() {
  local names=("$@") n c p ppid rest
  RANDOM=$(( SEED * 7919 + ROUND * 131 + 100 ))
  while [ ! -e "$RUN/stop" ]; do
    rand_sleep 100 600
    n=${names[RANDOM % ${#names[@]}]}
    read -r c p 2>/dev/null < "$RUN/pid.$n" || continue
    # only if it still is that loop's child (the pid file may be stale)
    read -r _ _ _ ppid rest 2>/dev/null < "/proc/$c/stat" || continue
    [ "$ppid" = "$p" ] && kill -KILL "$c" 2>/dev/null && echo "$n" >> "$RUN/kills"
  done
}

# waits for the loops, up to HANG_TIMEOUT seconds; returns 1 (after killing them)
# if some did not finish.
wait_loops() {
  local deadline=$(( $(date +%s) + HANG_TIMEOUT )) p busy st
  while :; do
    busy=()
    for p in "$@"; do
      st=$(awk '{ print $3 }' "/proc/$p/stat" 2>/dev/null) || continue
      [ "$st" = Z ] || busy+=("$p")
    done
    [ ${#busy[@]} -eq 0 ] && { for p in "$@"; do { wait "$p"; } 2>/dev/null; done; return 0; }
    if [ "$(date +%s)" -ge "$deadline" ]; then
      for p in "${busy[@]}"; do
        { echo "loop $p still busy after ${HANG_TIMEOUT}s:"; ps -o pid,etime,args --ppid "$p"; } >> "$RUN/hang.log" 2>&1
      done
      stop_pids "$@"
      return 1
    fi
    sleep 0.2
  done
}

count() { # count PATTERN FILES...: lines equal to PATTERN in the files that exist
  local f n=0 c
  for f in "${@:2}"; do [ -e "$f" ] && { c=$(grep -cx -- "$1" "$f"); n=$((n + c)); }; done
  echo "$n"
}
file_bytes() { # file_bytes DIR...: total size of the regular files under the DIRs
  find "$@" -type f -printf '%s\n' 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'
}
json_num() { # json_num FIELD FILE: a top-level number of blobctl's JSON
  grep -o "\"$1\" *: *[0-9]*" "$2" | head -1 | grep -o '[0-9]*$'
}

# ------------------------------------------------------------------- rounds ---
TOT_COMMITTED=0 TOT_VERIFIED=0 TOT_LOST=0 TOT_WRONG=0 TOT_FSCK=0 TOT_RECLAIM=0 TOT_HANGS=0 TOT_AMBIG=0
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
  RUN=$T/round-$ROUND
  STORE=$RUN/store
  mkdir -p "$RUN/locks"
  : > "$RUN/ledger"; : > "$RUN/errors"
  if ! "$BLOBCTL" --store "$STORE" init "${INIT_OPTS[@]}" > "$RUN/init.log" 2>&1; then
    cat "$RUN/init.log" >&2; die "blobctl init failed"
  fi
  if [ -n "$WRITERS" ]; then NW=$WRITERS; else NW=$(( 2 + (SEED * 31 + ROUND * 7) % 3 )); fi

  BG_PIDS=()
  VICTIMS=()
  for ((w = 0; w < NW; w++)); do writer_loop "$w" 2>> "$RUN/loops.err" & BG_PIDS+=($!); VICTIMS+=("writer$w"); done
  remover_loop 2>> "$RUN/loops.err" & BG_PIDS+=($!)
  [ "$KILL_REMOVER" = 1 ] && VICTIMS+=(remover)
  gc_loop 2>> "$RUN/loops.err" & BG_PIDS+=($!); VICTIMS+=(gc)
  if [ "$REPAIR" = 1 ]; then repair_loop 2>> "$RUN/loops.err" & BG_PIDS+=($!); VICTIMS+=(repair); fi
  if [ "$SETTLE" = 1 ]; then settle_loop 2>> "$RUN/loops.err" & BG_PIDS+=($!); VICTIMS+=(settle); fi
  LOOP_PIDS=("${BG_PIDS[@]}")
  if [ "$KILL" = 1 ]; then killer_loop "${VICTIMS[@]}" 2>> "$RUN/loops.err" & KILLER=$!; BG_PIDS+=($KILLER); fi

  sleep "$RACE_SECS"
  touch "$RUN/stop"
  [ "$KILL" = 1 ] && { wait "$KILLER"; } 2>/dev/null
  HUNG=0
  wait_loops "${LOOP_PIDS[@]}" || HUNG=1
  BG_PIDS=()
  TOT_HANGS=$((TOT_HANGS + HUNG))

  # ---- tallies of the race
  WLOGS=(); for ((w = 0; w < NW; w++)); do WLOGS+=("$RUN/log.writer$w"); done
  PUTS=$(count ok "${WLOGS[@]}"); PUTS_K=$(count killed "${WLOGS[@]}")
  RMS=$(count ok "$RUN/log.remover")
  GCS=$(count ok "$RUN/log.gc"); GCS_K=$(count killed "$RUN/log.gc")
  REPS=$(count ok "$RUN/log.repair"); REPS_K=$(count killed "$RUN/log.repair")
  SETS=$(count ok "$RUN/log.settle"); SETS_K=$(count killed "$RUN/log.settle")
  COMMITTED=$(grep -c '^put ' "$RUN/ledger")
  VERIFIED=$(count verified "$RUN/log.verify")
  LOST=$(grep -c '^midlost ' "$RUN/ledger"); WRONG=$(grep -c '^\(midwrong\|badput\) ' "$RUN/ledger")
  grep '^\(midlost\|midwrong\|badput\) ' "$RUN/ledger" > "$RUN/problems"

  # ---- 1. every digest expected present reads back byte-exact
  awk '{ if ($1 == "put") s[$2] = "P " $3; else if ($1 == "rm" || $1 == "gone") s[$2] = "A " $3; else if ($1 == "rm?") s[$2] = "U " $3 }
       END { for (d in s) print s[d], d }' "$RUN/ledger" > "$RUN/expected"
  AMBIG=$(grep -c '^U ' "$RUN/expected")
  while read -r st idx d; do
    [ "$st" = P ] || continue
    rm -f "$RUN/check.blob"
    "$BLOBCTL" --store "$STORE" get "$d" -o "$RUN/check.blob" > /dev/null 2> "$RUN/check.err"
    rc=$?
    if [ "$rc" != 0 ]; then
      LOST=$((LOST + 1)); echo "lost $d (file $idx): get rc=$rc $(head -1 "$RUN/check.err")" >> "$RUN/problems"
    elif [ "sha256:$(sha256sum "$RUN/check.blob" | cut -d' ' -f1)" != "$d" ] || ! cmp -s "$RUN/check.blob" "${FILES[idx]}"; then
      WRONG=$((WRONG + 1)); echo "wrong $d (file $idx): content differs" >> "$RUN/problems"
    else
      VERIFIED=$((VERIFIED + 1))
    fi
  done < "$RUN/expected"
  rm -f "$RUN/check.blob"

  # ---- 2. full fsck
  FSCK="fsck ok"
  "$BLOBCTL" --store "$STORE" fsck > "$RUN/fsck.log" 2>&1; rc=$?
  if [ "$rc" != 0 ] || ! grep -q 'store is healthy' "$RUN/fsck.log"; then
    FSCK="fsck FAILED (rc $rc)"; TOT_FSCK=$((TOT_FSCK + 1))
  fi

  # ---- 3. space is reclaimed once everything is removed
  RECL=ok; RECL_WHY=""
  "$BLOBCTL" --store "$STORE" ls --json > "$RUN/ls.json" 2>> "$RUN/reclaim.log" || RECL_WHY+=" ls-failed"
  mapfile -t LEFT < <(grep -o 'sha256:[0-9a-f]\{64\}' "$RUN/ls.json" | sort -u)
  RM_FAILS=0   # one rm per blob: a damaged blob must not keep the others
  for d in "${LEFT[@]}"; do
    "$BLOBCTL" --store "$STORE" rm "$d" >> "$RUN/reclaim.log" 2>&1 || RM_FAILS=$((RM_FAILS + 1))
  done
  [ "$RM_FAILS" = 0 ] || RECL_WHY+=" rm-failed($RM_FAILS)"
  for g in 1 2; do
    "$BLOBCTL" --store "$STORE" gc "${GC_OPTS[@]}" >> "$RUN/reclaim.log" 2>&1 || RECL_WHY+=" gc-failed"
  done
  "$BLOBCTL" --store "$STORE" df --json > "$RUN/df.json" 2>> "$RUN/reclaim.log" || RECL_WHY+=" df-failed"
  DF_BLOBS=$(json_num blobs "$RUN/df.json"); DF_CHUNKS=$(json_num chunks "$RUN/df.json")
  PACKS_BYTES=$(file_bytes "$STORE/packs")
  [ "${DF_BLOBS:-x}" = 0 ] || RECL_WHY+=" blobs=${DF_BLOBS:-?}"
  [ "${DF_CHUNKS:-x}" = 0 ] || RECL_WHY+=" chunks=${DF_CHUNKS:-?}"
  [ "$PACKS_BYTES" -le "$RECLAIM_LIMIT" ] || RECL_WHY+=" packs-not-reclaimed"
  "$BLOBCTL" --store "$STORE" fsck > "$RUN/fsck-after.log" 2>&1; rc=$?
  if [ "$rc" != 0 ] || ! grep -q 'store is healthy' "$RUN/fsck-after.log"; then RECL_WHY+=" fsck-after-reclaim-failed(rc=$rc)"; fi
  OTHER_BYTES=$(file_bytes "$STORE/ingest" "$STORE/tmp")
  if [ -n "$RECL_WHY" ]; then RECL="space not reclaimed:${RECL_WHY}"; TOT_RECLAIM=$((TOT_RECLAIM + 1)); fi

  # ---- report
  TOT_COMMITTED=$((TOT_COMMITTED + COMMITTED)); TOT_VERIFIED=$((TOT_VERIFIED + VERIFIED))
  TOT_LOST=$((TOT_LOST + LOST)); TOT_WRONG=$((TOT_WRONG + WRONG)); TOT_AMBIG=$((TOT_AMBIG + AMBIG))
  if [ "$REPAIR" = 1 ]; then REP_TXT="repairs $REPS (killed $REPS_K)"; else REP_TXT="repairs off"; fi
  if [ "$SETTLE" = 1 ]; then REP_TXT+=", settles $SETS (killed $SETS_K)"; else REP_TXT+=", settles off"; fi
  EXTRA=""
  [ "$AMBIG" -gt 0 ] && EXTRA+=", ambiguous $AMBIG"
  NERR=$(grep -c . "$RUN/errors"); [ "$NERR" -gt 0 ] && EXTRA+=", command errors $NERR"
  # (the errors themselves, e.g. a put failing other than by SIGKILL, go to stderr)
  [ "$NERR" -gt 0 ] && sed -E 's/sha256:[0-9a-f]{64}/sha256:.../g' "$RUN/errors" | sort | uniq -c | sort -rn | head -5 | sed "s/^/[crash-race] round $ROUND error: /" >&2
  [ "$HUNG" = 1 ] && EXTRA+=", HANG"
  [ "$OTHER_BYTES" -gt 0 ] && EXTRA+=", ingest+tmp left $(hbytes "$OTHER_BYTES")"
  printf 'round %d/%d: puts %d (killed %d), rms %d, gcs %d (killed %d), %s, lost %d, wrong %d, %s, reclaimed %s (packs %s)%s\n' \
    "$ROUND" "$ROUNDS" "$PUTS" "$PUTS_K" "$RMS" "$GCS" "$GCS_K" "$REP_TXT" "$LOST" "$WRONG" "$FSCK" \
    "$([ "$RECL" = ok ] && echo ok || echo "FAILED")" "$(hbytes "$PACKS_BYTES")" "$EXTRA"
  if [ "$LOST" -gt 0 ] || [ "$WRONG" -gt 0 ] || [ "$FSCK" != "fsck ok" ] || [ "$RECL" != ok ] || [ "$HUNG" = 1 ]; then
    FAILED_ROUNDS+=("$ROUND")
    sed 's/^/    /' "$RUN/problems" | head -10
    [ "$FSCK" != "fsck ok" ] && awk 'NR <= 4 { print; next } { a[NR] = $0 } END { for (i = (NR > 6 ? NR - 1 : 5); i <= NR; i++) print a[i] }' "$RUN/fsck.log" | sed 's/^/    fsck: /'
    [ "$RECL" != ok ] && echo "    $RECL"
    [ "$HUNG" = 1 ] && sed 's/^/    /' "$RUN/hang.log" | tail -20
    echo "    kept $RUN"
  elif [ "$KEEP" != 1 ]; then
    rm -rf "$RUN"
  fi
done

CLEAN=$([ ${#FAILED_ROUNDS[@]} -eq 0 ] && echo 1 || echo 0)
printf 'TOTAL rounds=%d committed=%d verified=%d lost=%d wrong=%d fsck_failures=%d reclaim_failures=%d hangs=%d ambiguous=%d\n' \
  "$ROUNDS" "$TOT_COMMITTED" "$TOT_VERIFIED" "$TOT_LOST" "$TOT_WRONG" "$TOT_FSCK" "$TOT_RECLAIM" "$TOT_HANGS" "$TOT_AMBIG"
if [ "$CLEAN" = 1 ]; then exit 0; fi
echo "failing rounds: ${FAILED_ROUNDS[*]} (kept under $T)"
exit 1

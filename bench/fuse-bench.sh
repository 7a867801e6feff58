#!/usr/bin/env bash
# bench/fuse-bench.sh [CORPUS_DIR]
#
# Read benchmark of the BlobStore FUSE mount (`blobctl mount`) against the same
# files in a local directory and against squashfuse over squashfs images of
# that directory (gzip = mksquashfs's default, and zstd), all in one run.
#
# It builds a root file system holding a 1 GiB file (the corpus layer tars
# base, app-v1, diff-1..3 concatenated, topped up with a seeded mix of random
# and text-like 1 MiB blocks; all generated when there is no corpus) and a tree
# of 50,000 small files (0-8 KiB, in 50x20 nested directories), puts it in ONE
# plain-tar layer of an OCI image layout, imports that into a fresh store
# (`blobctl image import LAYOUT --name bench`, tag latest) and mounts it: the
# files are under MNT/rootfs/bench/latest/. The same directory is squashed with
# mksquashfs and mounted with squashfuse.
#
# Measured, with `echo 3 > /proc/sys/vm/drop_caches` before every cold step:
#   - sequential read of the 1 GiB file (dd bs=1M): cold, then a second read
#     (warm: the blobstore mount sets keep_cache, so it comes from the page
#     cache; squashfuse has its image file in the page cache); median of
#     SEQ_RUNS rounds
#   - 4 KiB random pread()s at RAND_READS seeded 4 KiB-aligned offsets of the
#     1 GiB file (same offsets everywhere): p50/p99/mean in us, cold and warm
#   - first byte: open() to the first 1-byte read() returning, cold, median
#     of FIRST_BYTE_RUNS runs
#   - listing the 50k tree: `find DIR | wc -l` and `ls -lR DIR > /dev/null`,
#     cold (on a fresh mount: blobstore builds its merged tree, squashfuse
#     reads its tables) and warm
# and prints them side by side with ratios and the issue's targets: sequential
# >= 1.5x squashfuse, first byte < 5 ms, listing as fast as squashfuse.
#
#   CORPUS_DIR   default /work/corpus, else $HOME/.cache/blobstore-corpus; used
#                only if it holds base.tar (otherwise all content is generated)
#
# Environment:
#   BLOBCTL=PATH      blobctl binary (default REPO/.build/release/blobctl; built
#                     with `swift build -c release --product blobctl` if missing,
#                     after waiting for a running swift build)
#   BIG_MB=N          size of the big file in MiB (default 1024)
#   SMALL_FILES=N     files in the small-file tree (default 50000)
#   SMALL_MAX=BYTES   largest small file (default 8192; sizes uniform 0..max)
#   RAND_READS=N      4 KiB random reads per run (default 2000)
#   FIRST_BYTE_RUNS=N cold first-byte runs, median shown (default 5)
#   SEQ_RUNS=N        rounds of sequential reads (cold + again per system,
#                     interleaved), median shown (default 3)
#   SQFS_COMPS=LIST   squashfs compressors (default gzip,zstd; zstd skipped if
#                     mksquashfs lacks it)
#   SQFS_ZSTD_LEVEL=N mksquashfs -Xcompression-level for zstd (default 3, to
#                     keep the build short; mksquashfs's own default is 15 --
#                     decompression speed barely depends on the level)
#   SQUASHFUSE=BIN    squashfuse binary (default squashfuse; squashfuse_ll works)
#   OUT_JSON=FILE     also write all figures as JSON to FILE
#   BENCH_TMPDIR=DIR  parent of the scratch dir (default /work/tmp-bench if
#                     /work exists, else ${TMPDIR:-/tmp}); removed at the end
#                     unless KEEP=1 (mounts are always unmounted)
#
# Runs as root (drop_caches, /dev/fuse); without permission to drop caches the
# "cold" figures are not cold, and the report says so.
set -euo pipefail
export LC_ALL=C

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)
if [ -n "${1:-}" ]; then CORPUS=$(realpath -m "$1")
elif [ -s /work/corpus/base.tar ]; then CORPUS=/work/corpus
else CORPUS=$HOME/.cache/blobstore-corpus; fi
BIG_MB=${BIG_MB:-1024}
SMALL_FILES=${SMALL_FILES:-50000}
SMALL_MAX=${SMALL_MAX:-8192}
RAND_READS=${RAND_READS:-2000}
FIRST_BYTE_RUNS=${FIRST_BYTE_RUNS:-5}
SEQ_RUNS=${SEQ_RUNS:-3}
SQFS_COMPS=${SQFS_COMPS:-gzip,zstd}
SQFS_ZSTD_LEVEL=${SQFS_ZSTD_LEVEL:-3}
SQUASHFUSE=${SQUASHFUSE:-squashfuse}
KEEP=${KEEP:-0}
for v in BIG_MB SMALL_FILES SMALL_MAX RAND_READS FIRST_BYTE_RUNS SEQ_RUNS; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "$v must be a positive integer" >&2; exit 2; }
done

log() { printf '[fuse-bench] %s\n' "$*" >&2; }
die() { printf '[fuse-bench] ERROR: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------ prerequisites ---
. "$SCRIPT_DIR/lib.sh" # ensure COMMAND PACKAGE
ensure fusermount3 fuse3
ensure mksquashfs squashfs-tools
ensure "$SQUASHFUSE" squashfuse
ensure sha256sum coreutils
if [ ! -x /usr/bin/time ]; then ensure time time; fi
PY=python3; command -v "$PY" >/dev/null 2>&1 || PY=/usr/bin/python3
command -v "$PY" >/dev/null 2>&1 || ensure python3 python3-minimal
[ -e /dev/fuse ] || die "/dev/fuse is missing (modprobe fuse?)"
SQUASHFUSE=$(command -v "$SQUASHFUSE")

MKSQ_HELP=$(mksquashfs -help 2>&1 || true)   # -help exits non-zero
if [[ ",$SQFS_COMPS," == *",zstd,"* ]] && ! grep -qw zstd <<< "$MKSQ_HELP"; then
  log "mksquashfs has no zstd compressor; squashfs zstd skipped"
  SQFS_COMPS=$(printf '%s' "$SQFS_COMPS" | tr ',' '\n' | grep -vx zstd | paste -sd, -)
fi
IFS=',' read -r -a COMPS <<< "$SQFS_COMPS"

# ------------------------------------------------------------------ blobctl ---
if [ -z "${BLOBCTL:-}" ]; then
  BLOBCTL=$REPO_DIR/.build/release/blobctl
  if [ ! -x "$BLOBCTL" ]; then
    for _ in $(seq 1 120); do pgrep -f swift-build >/dev/null || break; log "waiting for a running swift build"; sleep 10; done
  fi
  if [ ! -x "$BLOBCTL" ]; then
    command -v swift >/dev/null || die "no $BLOBCTL and no swift toolchain to build it (set BLOBCTL=...)"
    log "building blobctl: swift build -c release --product blobctl"
    (cd "$REPO_DIR" && swift build -c release --product blobctl >&2) || die "swift build failed"
  fi
fi
[ -x "$BLOBCTL" ] || die "BLOBCTL=$BLOBCTL is not an executable"
BLOBCTL=$(realpath "$BLOBCTL")
"$BLOBCTL" mount --help >/dev/null 2>&1 || die "$BLOBCTL has no mount command"

# ------------------------------------------------------------- scratch dir ---
PARENT=$(scratch_parent)
W=$(mktemp -d "$PARENT/fuse-bench.XXXXXX")
STORE=$W/store
LOCAL=$W/rootfs                 # the local directory (and mksquashfs's input)
MNT_B=$W/mnt/blobstore
SQ_PIDS=()
mounted() { awk -v p="$1" '$5 == p { f = 1 } END { exit !f }' /proc/self/mountinfo; }
unmount_all() {
  local m
  if mounted "$MNT_B"; then
    "$BLOBCTL" umount "$MNT_B" >/dev/null 2>&1 || fusermount3 -u -z "$MNT_B" 2>/dev/null || true
  fi
  for m in "$W"/mnt/sq-*; do
    if [ -d "$m" ] && mounted "$m"; then fusermount3 -u "$m" 2>/dev/null || fusermount3 -u -z "$m" 2>/dev/null || true; fi
  done
  local p
  for p in "${SQ_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  SQ_PIDS=()
}
cleanup() {
  local rc=$?
  unmount_all
  if [ "$KEEP" = 1 ]; then log "kept scratch dir $W"; else rm -rf "$W"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$W/out" "$W/mnt" "$MNT_B"
RES=$W/results.tsv    # system metric value [extra]
EXTRA=$W/extra.tsv    # key value
: > "$RES"; : > "$EXTRA"
res() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$RES"; }
extra() { printf '%s\t%s\n' "$1" "$2" >> "$EXTRA"; }
log "scratch $W"

START=$(date +%s)
cpu_busy_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9; exit}' /proc/stat; }
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
b0=$(cpu_busy_ticks); sleep 1; b1=$(cpu_busy_ticks)
if [ $(( (b1 - b0) * 4 )) -gt $(( CLK_TCK * $(nproc) )) ]; then
  log "WARNING: the machine is $(( (b1 - b0) * 100 / CLK_TCK / $(nproc) ))% busy before the start; other work will distort the figures"
fi

COLD=1
drop_caches() {
  sync
  if [ "$COLD" = 1 ] && ! { echo 3 > /proc/sys/vm/drop_caches; } 2>/dev/null; then
    log "WARNING: cannot write /proc/sys/vm/drop_caches (not root?): 'cold' figures are NOT cold"
    COLD=0
  fi
}

# ------------------------------------------------------------ probe helper ---
# probe first FILE          -> microseconds from open() to a 1-byte read()
# probe rand FILE N SEED    -> p50 p99 mean max (us) of N 4 KiB preads
cat > "$W/probe.c" <<'EOF'
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
static double now_us(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e6 + t.tv_nsec / 1e3; }
static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }
int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "first")) {
    char c; double t0 = now_us();
    int fd = open(argv[2], O_RDONLY);
    if (fd < 0) { perror(argv[2]); return 1; }
    ssize_t n = read(fd, &c, 1);
    double t1 = now_us();
    if (n != 1) { perror("read"); return 1; }
    printf("%.1f\n", t1 - t0);
    close(fd);
    return 0;
  }
  if (argc == 5 && !strcmp(argv[1], "rand")) {
    int fd = open(argv[2], O_RDONLY);
    if (fd < 0) { perror(argv[2]); return 1; }
    struct stat st; fstat(fd, &st);
    long n = atol(argv[3]); uint64_t x = strtoull(argv[4], 0, 10) | 1;
    uint64_t blocks = (uint64_t)st.st_size / 4096;
    double *lat = malloc(sizeof(double) * n), sum = 0;
    char *buf = aligned_alloc(4096, 4096);
    for (long i = 0; i < n; i++) {
      x ^= x << 13; x ^= x >> 7; x ^= x << 17;                 /* xorshift64 */
      off_t off = (off_t)(x % blocks) * 4096;
      double t0 = now_us();
      if (pread(fd, buf, 4096, off) != 4096) { perror("pread"); return 1; }
      lat[i] = now_us() - t0; sum += lat[i];
    }
    qsort(lat, n, sizeof(double), cmp);
    /* nearest rank */
    printf("%.1f %.1f %.1f %.1f\n", lat[(n * 50 + 99) / 100 - 1], lat[(n * 99 + 99) / 100 - 1], sum / n, lat[n - 1]);
    close(fd);
    return 0;
  }
  fprintf(stderr, "usage: probe first FILE | probe rand FILE N SEED\n");
  return 2;
}
EOF
cat > "$W/probe.py" <<'EOF'
import os, sys, time
def now(): return time.perf_counter_ns() / 1e3
if sys.argv[1] == "first":
    t0 = now(); fd = os.open(sys.argv[2], os.O_RDONLY); b = os.read(fd, 1); t1 = now()
    assert len(b) == 1
    print("%.1f" % (t1 - t0))
else:
    fd = os.open(sys.argv[2], os.O_RDONLY); n = int(sys.argv[3]); x = int(sys.argv[4]) | 1
    blocks = os.fstat(fd).st_size // 4096; lat = []; M = (1 << 64) - 1
    for _ in range(n):
        x ^= (x << 13) & M; x ^= x >> 7; x ^= (x << 17) & M
        t0 = now(); b = os.pread(fd, 4096, (x % blocks) * 4096); lat.append(now() - t0)
        assert len(b) == 4096
    lat.sort()
    r = lambda p: lat[(n * p + 99) // 100 - 1]
    print("%.1f %.1f %.1f %.1f" % (r(50), r(99), sum(lat) / n, lat[-1]))
EOF
if command -v cc >/dev/null 2>&1 && cc -O2 -o "$W/probe" "$W/probe.c" 2> "$W/out/probe.cc.err"; then
  PROBE=("$W/probe"); extra probe "C (cc -O2)"
else
  log "no C compiler (or it failed); using the Python probe (adds ~1-2 us per read)"
  PROBE=("$PY" "$W/probe.py"); extra probe "python3"
fi

# -------------------------------------------------------------- test data ---
log "building the root file system: ${BIG_MB} MiB file + ${SMALL_FILES} small files"
t0=$(date +%s.%N)
"$PY" - "$LOCAL" "$CORPUS" "$BIG_MB" "$SMALL_FILES" "$SMALL_MAX" > "$W/out/gen.txt" <<'EOF'
import os, random, sys
root, corpus, big_mb, nfiles, smax = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
big = big_mb << 20
r = random.Random(20261129)
vocab = ["".join(r.choices("abcdefghijklmnopqrstuvwxyz_", k=r.randint(2, 11))) for _ in range(6000)]
def text(n):
    out = bytearray()
    while len(out) < n:
        words = r.choices(vocab, k=4096)
        for i in range(0, 4096, 12):
            out += (" ".join(words[i:i + 12]) + " %d\n" % r.randrange(1 << 20)).encode()
    return bytes(out[:n])
os.makedirs(os.path.join(root, "data"), exist_ok=True)
done = 0; used = []
with open(os.path.join(root, "data", "big.bin"), "wb") as f:
    # the corpus's distinct layers first (no second version of app: no intra-file dedup)
    for name in ("base.tar", "app-v1.tar", "diff-1.tar", "diff-2.tar", "diff-3.tar"):
        p = os.path.join(corpus, name)
        if done >= big or not os.path.isfile(p): continue
        with open(p, "rb") as src:
            while done < big:
                b = src.read(min(8 << 20, big - done))
                if not b: break
                f.write(b); done += len(b)
        used.append(name)
    corpus_bytes = done
    i = 0
    while done < big:   # alternate random and text-like 1 MiB blocks
        n = min(1 << 20, big - done)
        f.write(r.randbytes(n) if i % 2 == 0 else text(n)); done += n; i += 1
print("big_corpus_files\t" + (",".join(used) or "-"))
print("big_corpus_bytes\t%d" % corpus_bytes)
print("big_generated_bytes\t%d" % (done - corpus_bytes))
pool = text(4 << 20) + r.randbytes(1 << 20)
total = 0
d1n, d2n = 50, 20
for k in range(nfiles):
    d = os.path.join(root, "tree", "d%02d" % (k % d1n), "e%02d" % ((k // d1n) % d2n))
    if k < d1n * d2n: os.makedirs(d, exist_ok=True)
    size = r.randint(0, smax); off = r.randrange(len(pool) - size + 1)
    with open(os.path.join(d, "f%06d.txt" % k), "wb") as f: f.write(pool[off:off + size])
    total += size
print("small_files\t%d" % nfiles)
print("small_bytes\t%d" % total)
print("dirs\t%d" % (1 + d1n + d1n * min(d2n, max(1, nfiles // d1n))))
EOF
cat "$W/out/gen.txt" >> "$EXTRA"
extra gen_s "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')"
BIG_REL=data/big.bin
TREE_REL=tree
BIG_BYTES=$(stat -c %s "$LOCAL/$BIG_REL")
N_LOCAL=$(find "$LOCAL/$TREE_REL" | wc -l)
extra big_bytes "$BIG_BYTES"
extra tree_entries "$N_LOCAL"

# ------------------------------------------------ OCI layout -> blobstore ---
log "layer tar + OCI layout"
LAYOUT=$W/layout
mkdir -p "$LAYOUT/blobs/sha256"
tar -C "$LOCAL" --sort=name --owner=0 --group=0 --numeric-owner -cf "$W/layer.tar" . \
  || die "tar failed"
LAYER_HEX=$(sha256sum "$W/layer.tar" | cut -d' ' -f1)
LAYER_SIZE=$(stat -c %s "$W/layer.tar")
mv "$W/layer.tar" "$LAYOUT/blobs/sha256/$LAYER_HEX"
"$PY" - "$LAYOUT" "$LAYER_HEX" "$LAYER_SIZE" <<'EOF' || die "writing the OCI layout failed"
import hashlib, json, os, sys
lay, hexd, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
def put(obj):
    b = json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()
    h = hashlib.sha256(b).hexdigest()
    open(os.path.join(lay, "blobs", "sha256", h), "wb").write(b)
    return {"digest": "sha256:" + h, "size": len(b)}
cfg = put({"architecture": "amd64", "os": "linux", "config": {},
           "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hexd]}})
cfg["mediaType"] = "application/vnd.oci.image.config.v1+json"
man = put({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": cfg,
           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + hexd, "size": size}]})
man["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
man["annotations"] = {"org.opencontainers.image.ref.name": "latest"}
json.dump({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [man]},
          open(os.path.join(lay, "index.json"), "w"))
json.dump({"imageLayoutVersion": "1.0.0"}, open(os.path.join(lay, "oci-layout"), "w"))
EOF
extra layer_bytes "$LAYER_SIZE"
log "blobctl image import ($(( LAYER_SIZE / 1048576 )) MiB layer)"
t0=$(date +%s.%N)
"$BLOBCTL" --store "$STORE" image import "$LAYOUT" --name bench > "$W/out/import.out" 2> "$W/out/import.err" \
  || { tail -n 15 "$W/out/import.err" >&2; die "blobctl image import failed"; }
extra import_s "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')"
rm -rf "$LAYOUT"
extra store_bytes "$(du -sb "$STORE" | cut -f1)"
ROOT_B=$MNT_B/rootfs/bench/latest

# ---------------------------------------------------------------- squashfs ---
for c in "${COMPS[@]}"; do
  opts=(-comp "$c")
  [ "$c" = zstd ] && opts+=(-Xcompression-level "$SQFS_ZSTD_LEVEL")
  log "mksquashfs ${opts[*]}"
  t0=$(date +%s.%N)
  mksquashfs "$LOCAL" "$W/sq-$c.img" "${opts[@]}" -noappend -no-progress -quiet > "$W/out/mksquashfs.$c.out" 2>&1 \
    || { tail -n 15 "$W/out/mksquashfs.$c.out" >&2; die "mksquashfs -comp $c failed"; }
  extra "mksquashfs_${c}_s" "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')"
  extra "sq_${c}_bytes" "$(stat -c %s "$W/sq-$c.img")"
  mkdir -p "$W/mnt/sq-$c"
done
extra "mksquashfs.version" "$(mksquashfs -version 2>&1 | head -n 1)"
extra "squashfuse.version" "$("$SQUASHFUSE" --version 2>&1 | head -n 1 || true) ($(basename "$SQUASHFUSE"))"
extra zstd_level "$SQFS_ZSTD_LEVEL"

# ------------------------------------------------------------------ mounts ---
wait_mounted() { local i; for i in $(seq 1 200); do mounted "$1" && return 0; sleep 0.05; done; return 1; }
mount_blobstore() {
  "$BLOBCTL" --store "$STORE" mount "$MNT_B" > "$W/out/mount.out" 2> "$W/out/mount.err" \
    || { cat "$W/out/mount.err" >&2; die "blobctl mount failed"; }
  wait_mounted "$MNT_B" || die "blobstore mount did not appear"
}
umount_blobstore() { "$BLOBCTL" umount "$MNT_B" >/dev/null 2>&1 || die "blobctl umount failed"; }
mount_squash() { # mount_squash COMP
  "$SQUASHFUSE" -f "$W/sq-$1.img" "$W/mnt/sq-$1" > "$W/out/squashfuse.$1.log" 2>&1 &
  SQ_PIDS+=($!)
  printf '%s' $! > "$W/out/squashfuse.$1.pid"
  wait_mounted "$W/mnt/sq-$1" || { cat "$W/out/squashfuse.$1.log" >&2; die "squashfuse $1 did not mount"; }
}
# the pid serving a mount point (blobctl's foreground child / squashfuse)
server_pid() {
  case "$1" in
    blobstore) local p a
      for p in /proc/[0-9]*; do
        a=$(tr '\0' '\n' 2>/dev/null < "$p/cmdline") || continue
        if grep -qx -- "$MNT_B" <<< "$a" && grep -qx -- "--foreground" <<< "$a"; then echo "${p#/proc/}"; return; fi
      done ;;
    sq-*) cat "$W/out/squashfuse.${1#sq-}.pid" ;;
    *) echo "" ;;
  esac
}
proc_cpu_ticks() { [ -n "$1" ] && awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
bdi_ra() { # read_ahead_kb of the bdi behind a path
  local d; d=$(stat -c '%d' "$1"); cat "/sys/class/bdi/$((d >> 8)):$((d & 255))/read_ahead_kb" 2>/dev/null || echo "?"
}

# One-time cost: the first access to rootfs/ indexes the layer tar (kept in the store).
mount_blobstore
drop_caches
log "blobstore: first access to rootfs/bench/latest (builds the layer index, once per store)"
t0=$(date +%s.%N)
stat "$ROOT_B/$BIG_REL" > /dev/null || die "$ROOT_B/$BIG_REL not found in the mount (ls $MNT_B/rootfs: $(ls -R "$MNT_B/rootfs" | head -n 5 | tr '\n' ' '))"
extra first_rootfs_access_s "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}')"
umount_blobstore

# Fresh mounts for everything below.
mount_blobstore
for c in "${COMPS[@]}"; do mount_squash "$c"; done
SYSTEMS=(local blobstore)
for c in "${COMPS[@]}"; do SYSTEMS+=("sq-$c"); done
root_of() { case "$1" in local) echo "$LOCAL" ;; blobstore) echo "$ROOT_B" ;; sq-*) echo "$W/mnt/$1" ;; esac; }
extra read_ahead_kb.blobstore "$(bdi_ra "$MNT_B")"
for c in "${COMPS[@]}"; do extra "read_ahead_kb.sq-$c" "$(bdi_ra "$W/mnt/sq-$c")"; done

secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.4f", b-a}'; }

# ----------------------------------------------------------------- listing ---
# First: cold listings on the fresh mounts (blobstore builds its merged tree here).
for s in "${SYSTEMS[@]}"; do
  R=$(root_of "$s")/$TREE_REL
  for kind in find lsR; do
    for temp in cold warm; do
      [ "$temp" = cold ] && drop_caches
      log "$s: $kind $temp"
      t0=$(date +%s.%N)
      if [ "$kind" = find ]; then n=$(find "$R" | wc -l); else ls -lR "$R" > "$W/out/lsR.$s" ; n=$(grep -c '^-' "$W/out/lsR.$s"); fi
      t1=$(date +%s.%N)
      res "$s" "${kind}_${temp}_s" "$(secs "$t0" "$t1")"
      if [ "$kind" = find ] && [ "$n" != "$N_LOCAL" ]; then log "WARNING: $s lists $n entries, the local tree $N_LOCAL"; fi
      if [ "$kind" = lsR ] && [ "$n" != "$SMALL_FILES" ]; then log "WARNING: $s ls -lR shows $n files, expected $SMALL_FILES"; fi
    done
  done
done

# ------------------------------------------------------------- first byte ---
for s in "${SYSTEMS[@]}"; do
  F=$(root_of "$s")/$BIG_REL
  : > "$W/out/first.$s"
  for _ in $(seq 1 "$FIRST_BYTE_RUNS"); do
    drop_caches
    "${PROBE[@]}" first "$F" >> "$W/out/first.$s" || die "$s: first-byte probe failed"
  done
  med=$(sort -n "$W/out/first.$s" | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
  res "$s" first_byte_us "$med"
  res "$s" first_byte_all_us "$(paste -sd' ' "$W/out/first.$s")"
  log "$s: first byte (median of $FIRST_BYTE_RUNS) ${med} us"
done

# -------------------------------------------------------- sequential reads ---
user_ticks() { awk '/^cpu /{print $2+$3; exit}' /proc/stat; }   # user-space CPU of the machine
proc_user_ticks() { [ -n "$1" ] && awk '{print $14}' "/proc/$1/stat" 2>/dev/null || echo 0; }
seq_read() { # seq_read SYSTEM TEMP : one dd; appends "MB/s secs server_cpu_s other_user_cpu_s" to out/seq.SYSTEM.TEMP
  local s=$1 temp=$2 F pid c0 c1 u0 u1 su0 su1 line secs mbs own other
  F=$(root_of "$s")/$BIG_REL
  pid=$(server_pid "$s")
  c0=$(proc_cpu_ticks "$pid"); su0=$(proc_user_ticks "$pid"); u0=$(user_ticks)
  /usr/bin/time -f '%U %S' -o "$W/out/dd.time" dd if="$F" of=/dev/null bs=1M 2> "$W/out/dd.$s.$temp" \
    || { cat "$W/out/dd.$s.$temp" >&2; die "$s: dd failed"; }
  c1=$(proc_cpu_ticks "$pid"); su1=$(proc_user_ticks "$pid"); u1=$(user_ticks)
  line=$(grep -E 'bytes .* copied' "$W/out/dd.$s.$temp")
  [ "$(awk '{print $1}' <<< "$line")" = "$BIG_BYTES" ] || die "$s: dd read $(awk '{print $1}' <<< "$line") bytes, expected $BIG_BYTES"
  secs=$(sed -E 's/.*copied, ([0-9.e+-]+) s.*/\1/' <<< "$line")
  mbs=$(awk -v b="$BIG_BYTES" -v t="$secs" 'BEGIN{printf "%.1f", b/1e6/t}')
  own=$(awk -v a="$c0" -v b="$c1" -v hz="$CLK_TCK" 'BEGIN{printf "%.2f", (b-a)/hz}')
  # user-space CPU of everything but dd and the server (kernel I/O work is not counted)
  other=$(awk -v u0="$u0" -v u1="$u1" -v s0="$su0" -v s1="$su1" -v hz="$CLK_TCK" -v t="$(cat "$W/out/dd.time")" \
    'BEGIN{split(t,x," "); v=(u1-u0-(s1-s0))/hz-x[1]; if(v<0)v=0; printf "%.2f", v}')
  printf '%s %s %s %s\n' "$mbs" "$secs" "$own" "$other" >> "$W/out/seq.$s.$temp"
  log "$s: sequential $temp ${mbs} MB/s (${secs} s; server CPU ${own} s, other processes ${other} user CPU s)"
}
# SEQ_RUNS rounds over all systems (interleaved, so a disturbance hits one round of each);
# each round: drop_caches, cold read, read again. Median MB/s shown.
for r in $(seq 1 "$SEQ_RUNS"); do
  for s in "${SYSTEMS[@]}"; do
    drop_caches
    seq_read "$s" cold
    seq_read "$s" warm
  done
done
for s in "${SYSTEMS[@]}"; do
  for temp in cold warm; do
    # the median run by MB/s (lower middle for an even count)
    read -r mbs secs own other < <(sort -n "$W/out/seq.$s.$temp" | awk '{a[NR]=$0} END{print a[int((NR+1)/2)]}')
    res "$s" "seq_${temp}_mbs" "$mbs"
    res "$s" "seq_${temp}_s" "$secs"
    res "$s" "seq_${temp}_server_cpu_s" "$own"
    res "$s" "seq_${temp}_other_cpu_s" "$other"
    res "$s" "seq_${temp}_all_mbs" "$(awk '{print $1}' "$W/out/seq.$s.$temp" | paste -sd' ')"
    res "$s" "seq_${temp}_max_other_cpu_s" "$(awk 'BEGIN{m=0} $4>m{m=$4} END{print m}' "$W/out/seq.$s.$temp")"
  done
done

# ----------------------------------------------------------- random reads ---
for s in "${SYSTEMS[@]}"; do
  F=$(root_of "$s")/$BIG_REL
  for temp in cold warm; do
    [ "$temp" = cold ] && drop_caches
    # warm = the same offsets again right after the cold pass
    read -r p50 p99 mean max < <("${PROBE[@]}" rand "$F" "$RAND_READS" 42) || die "$s: random-read probe failed"
    res "$s" "rand_${temp}_p50_us" "$p50"; res "$s" "rand_${temp}_p99_us" "$p99"
    res "$s" "rand_${temp}_mean_us" "$mean"; res "$s" "rand_${temp}_max_us" "$max"
    log "$s: 4 KiB random $temp: p50 ${p50} us, p99 ${p99} us, mean ${mean} us"
  done
done

# ------------------------------------------------------------ correctness ---
log "checking contents (untimed): big file, 500 sampled small files"
for s in "${SYSTEMS[@]}"; do
  [ "$s" = local ] && continue
  R=$(root_of "$s")
  cmp -s "$LOCAL/$BIG_REL" "$R/$BIG_REL" || die "$s: $BIG_REL differs from the local copy"
  find "$LOCAL/$TREE_REL" -type f | awk 'NR % 100 == 7' | while read -r f; do
    cmp -s "$f" "$R/${f#"$LOCAL"/}" || { echo "$f"; break; }
  done > "$W/out/cmp.$s"
  if [ -s "$W/out/cmp.$s" ]; then die "$s: $(cat "$W/out/cmp.$s") differs from the local copy"; fi
done
extra contents_checked yes

unmount_all
extra cold "$COLD"
extra seq_runs "$SEQ_RUNS"
extra cores "$(nproc)"
extra elapsed_s "$(( $(date +%s) - START ))"
extra kernel "$(uname -r)"
extra local_fs "$(stat -f -c %T "$LOCAL")"

# ------------------------------------------------------------------ report ---
"$PY" - "$RES" "$EXTRA" "${OUT_JSON:-}" "$SQFS_COMPS" <<'EOF'
import json, sys
res_f, extra_f, out_json, comps = sys.argv[1:5]
comps = [c for c in comps.split(",") if c]
extra = dict(l.rstrip("\n").split("\t", 1) for l in open(extra_f))
res = {}
for l in open(res_f):
    s, m, v = l.rstrip("\n").split("\t", 2)
    try: v = float(v)
    except ValueError: pass
    res.setdefault(s, {})[m] = v
systems = ["local", "blobstore"] + ["sq-" + c for c in comps]
heads = ["local dir", "blobstore"] + ["squashfuse " + c for c in comps]
cold = extra.get("cold") == "1"
def fmt(v, nd=1):
    if v is None: return "n/a"
    if isinstance(v, str): return v
    return f"{v:,.{nd}f}"
def ratio(a, b): return round(a / b, 2) if (a is not None and b) else None
def g(s, m): return res.get(s, {}).get(m)
C = "cold" if cold else "NOT cold"
rows = [  # label, metric, scale, decimals, higher-is-better
    (f"seq read {C} (MB/s)", "seq_cold_mbs", 1, 1, True),
    ("seq read again (MB/s)", "seq_warm_mbs", 1, 1, True),
    (f"4K rand {C} p50 (us)", "rand_cold_p50_us", 1, 1, False),
    (f"4K rand {C} p99 (us)", "rand_cold_p99_us", 1, 1, False),
    ("4K rand again p50 (us)", "rand_warm_p50_us", 1, 1, False),
    ("4K rand again p99 (us)", "rand_warm_p99_us", 1, 1, False),
    (f"first byte {C} (ms)", "first_byte_us", 1e-3, 2, False),
    (f"find tree {C} (s)", "find_cold_s", 1, 3, False),
    ("find tree warm (s)", "find_warm_s", 1, 3, False),
    (f"ls -lR tree {C} (s)", "lsR_cold_s", 1, 3, False),
    ("ls -lR tree warm (s)", "lsR_warm_s", 1, 3, False),
]
rheads = ["b/local"] + ["b/sq-" + c for c in comps]
big = int(extra.get("big_bytes", 0))
print()
print(f"big file: {big/2**20:,.0f} MiB ({extra.get('big_corpus_files','-')} from the corpus: "
      f"{int(extra.get('big_corpus_bytes',0))/2**20:,.0f} MiB; generated random+text: "
      f"{int(extra.get('big_generated_bytes',0))/2**20:,.0f} MiB); tree: {extra.get('small_files')} files "
      f"({int(extra.get('small_bytes',0))/2**20:,.1f} MiB) in {extra.get('dirs')} dirs; {extra.get('cores','?')} cores")
w0 = 26
hdr = f"{'':<{w0}}" + "".join(f"{h:>17}" for h in heads) + "".join(f"{h:>11}" for h in rheads)
print(hdr); print("-" * len(hdr))
table = {}
for label, m, scale, nd, up in rows:
    vals = {s: (g(s, m) * scale if g(s, m) is not None else None) for s in systems}
    rat = {h: ratio(vals["blobstore"], vals[s]) for h, s in zip(rheads, ["local"] + ["sq-" + c for c in comps])}
    table[m] = dict(values=vals, ratios=rat, higher_is_better=up)
    print(f"{label:<{w0}}" + "".join(f"{fmt(vals[s], nd):>17}" for s in systems)
          + "".join(f"{fmt(v, 2):>11}" for v in rat.values()))
print("(ratios are blobstore / other: above 1 is better for MB/s, below 1 is better for times;"
      " the local dir's seq 'again' and rand 'again' rows are the page-cache-warm reference)")
srv = "  ".join(f"{s} {fmt(g(s,'seq_cold_server_cpu_s'),2)} s" for s in systems if s != "local")
print(f"server CPU during the (median) cold sequential read: {srv}")
print("cold sequential runs (MB/s): " + "  ".join(f"{s}: {g(s,'seq_cold_all_mbs')}" for s in systems))
oth = [(s, g(s, "seq_cold_max_other_cpu_s")) for s in systems]
busy = [f"{s} ({v:.2f} CPU s)" for s, v in oth if v is not None and v > max(0.2, 0.1 * int(extra.get('cores', 1)) * (g(s, 'seq_cold_s') or 1))]
if busy: print("WARNING: other processes used >10% of the machine (user CPU) during a cold sequential read of: "
               + ", ".join(busy) + " -- rerun on an idle machine")
fb = "  ".join(f"{s}: {g(s,'first_byte_all_us')}" for s in systems)
print(f"first byte cold runs (us): {fb}")
print(f"blobstore: first access to rootfs/ (indexes the layer tar, once per store) "
      f"{extra.get('first_rootfs_access_s')} s; import {extra.get('import_s')} s")
sizes = [f"store {int(extra['store_bytes'])/1e6:,.1f} MB"] + [f"sq-{c} {int(extra['sq_'+c+'_bytes'])/1e6:,.1f} MB (mksquashfs {extra.get('mksquashfs_'+c+'_s')} s)" for c in comps]
print(f"on disk: layer tar {int(extra['layer_bytes'])/1e6:,.1f} MB; " + "; ".join(sizes))
print("read_ahead_kb: " + "  ".join(f"{k.split('.',1)[1]} {v}" for k, v in extra.items() if k.startswith("read_ahead_kb.")))

def check(name, value, limit, op):
    if value is None or limit is None: return dict(target=name, value=value, limit=limit, result="n/a")
    ok = value >= limit if op == ">=" else (value <= limit if op == "<=" else value < limit)
    return dict(target=name, value=round(value, 3), limit=round(limit, 3), result="PASS" if ok else "FAIL")
def lim(s, m, k): v = g(s, m); return v * k if v is not None else None
targets = []
for c in comps:
    targets.append(check(f"seq read cold >= 1.5x squashfuse {c} (MB/s)", g("blobstore", "seq_cold_mbs"), lim("sq-" + c, "seq_cold_mbs", 1.5), ">="))
fbv = g("blobstore", "first_byte_us")
targets.append(check(f"first byte of the {big/2**20:,.0f} MiB file < 5 ms (cold)", fbv and fbv / 1000, 5.0, "<"))
for c in comps:
    for m, what in (("find_cold_s", "find cold"), ("find_warm_s", "find warm"), ("lsR_cold_s", "ls -lR cold"), ("lsR_warm_s", "ls -lR warm")):
        targets.append(check(f"{what} <= 1.1x squashfuse {c} (s)", g("blobstore", m), lim("sq-" + c, m, 1.1), "<="))
print()
print("Targets" + ("" if cold else "  (page cache could NOT be dropped: cold figures are warm)"))
for t in targets:
    print(f"  [{t['result']:>4}] {t['target']:<48} value {fmt(t['value'], 3)}  limit {fmt(t['limit'], 3)}")
print()
notes = [
    "sequential = dd if=FILE of=/dev/null bs=1M; 'cold' right after echo 3 > /proc/sys/vm/drop_caches, "
    "'again' = a second dd straight after (blobstore sets keep_cache, so the kernel page cache serves it); "
    f"median of {extra.get('seq_runs')} rounds.",
    f"random = {extra.get('probe')} probe: 4 KiB pread()s at seeded 4 KiB-aligned offsets, same offsets on every system; "
    "'again' repeats the same offsets.",
    "first byte = open() to a 1-byte read() returning, after drop_caches, median of the runs listed.",
    "listing: the first (cold) find is on a fresh mount; ls -lR counts regular files to check the tree.",
    f"squashfs: mksquashfs defaults (128 KiB blocks) with -comp gzip (level 9) / -comp zstd -Xcompression-level {extra.get('zstd_level')}; "
    f"{extra.get('squashfuse.version')}; {extra.get('mksquashfs.version')}.",
]
for n in notes: print("note: " + n)
print(f"elapsed {extra.get('elapsed_s')} s")
if out_json:
    json.dump(dict(results=res, table=table, targets=targets, extra=extra, notes=notes), open(out_json, "w"), indent=2)
    print(f"\nJSON written to {out_json}")
EOF
log "done in $(( $(date +%s) - START )) s"

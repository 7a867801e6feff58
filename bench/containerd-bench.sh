#!/usr/bin/env bash
# bench/containerd-bench.sh
#
# containerd with its own content store and overlayfs snapshotter (the baseline) against
# containerd with BlobStore as both (`blobctl containerd-proxy`), in the same run, on the
# same images, pulled from the same `blobctl serve` registry over loopback.
#
# The images are versions of one application on a shared base, as a build farm makes them:
# image K (K = 1..MAX) has three gzip layers:
#   base.tar  of the corpus (../shared/bench/make-corpus.sh), the same in every image;
#   app-K     app-v1.tar (odd K) or app-v2.tar (even K) of the corpus with a VERSION file
#             added and one file per version changed: a new build of the app layer, so a
#             new layer digest every version with almost all of its files unchanged;
#   tools     a static busybox under /bb, the same in every image.
# They are built once into CACHE (gzip -6, deterministic) and imported into a registry
# store of their own.
#
# Per engine, images 1..N are pulled one after another (`ctr images pull --plain-http`,
# with `--snapshotter blobstore` for BlobStore), and after each N in COUNTS the bytes on
# disk are taken (`du -s -B1`, allocated blocks):
#   containerd + overlayfs: containerd's root (content store, overlayfs snapshots, bolt);
#   BlobStore: the proxy's store (packs, index, snapshot trees) plus containerd's root
#              (bolt only), with the snapshot trees unpacked, and "settled": without the
#              trees of idle committed snapshots, i.e. what `--settle-after` leaves (their
#              layers are in the store already; the figure is taken by subtracting the
#              trees, then checked at the end by really settling: the proxy is restarted
#              with --settle-after 1 and the store measured again).
# Then, per engine: container start (`ctr run --rm IMAGE ID /bb/busybox true`, START_RUNS
# times; for BlobStore the first start after settling unpacks the image's trees again and
# is reported apart as "cold"), and read throughput inside a container (every file under
# /usr and /app read with busybox cat, caches dropped first; wall minus the median start).
#
# Environment:
#   CORPUS=DIR      the corpus (default /work/corpus, else ~/.cache/blobstore-corpus; built
#                   with ../shared/bench/make-corpus.sh if missing)
#   COUNTS="1 5 10 20"  image counts at which bytes are taken (the last is the number pulled)
#   START_RUNS=N    container starts per engine (default 5)
#   CACHE=DIR       where the images are built (default SCRATCH_PARENT/containerd-bench-images)
#   BLOBCTL=PATH    blobctl binary (default REPO/.build/release/blobctl); a private copy is run
#   BUSYBOX=PATH    static busybox (default: command -v busybox)
#   OUT_JSON=FILE   also write the figures as JSON
#   ENGINES="overlayfs blobstore"  the engines to run (both for the report)
#   CHANGES=one|grow  what changes between versions: one file by a line of the same length
#                   (default), or five files by k lines each with new mtimes (the gzip
#                   streams of two versions then differ from the first change on)
#   KEEP=1          keep the scratch folder
set -euo pipefail
export LC_ALL=C

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)
COUNTS=${COUNTS:-"1 5 10 20"}
START_RUNS=${START_RUNS:-5}
ENGINES=${ENGINES:-"overlayfs blobstore"}
CHANGES=${CHANGES:-one}
KEEP=${KEEP:-0}
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3

log() { printf '[cbench] %s\n' "$*" >&2; }
die() { printf '[cbench] ERROR: %s\n' "$*" >&2; exit 1; }
. "$SCRIPT_DIR/lib.sh" # ensure, scratch_parent, stop_pid, free_port, wait_ready

[ "$(id -u)" = 0 ] || die "needs root (containerd, overlay mounts)"
for n in $COUNTS; do [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "COUNTS must be positive integers"; done
[[ "$CHANGES" =~ ^(one|grow)$ ]] || die "CHANGES must be one or grow"
MAX=$(printf '%s\n' $COUNTS | sort -n | tail -1)
ensure containerd containerd
ensure ctr containerd
ensure curl curl
BUSYBOX=${BUSYBOX:-$(command -v busybox || true)}
[ -n "$BUSYBOX" ] || { ensure busybox busybox-static; BUSYBOX=$(command -v busybox); }
BLOBCTL=${BLOBCTL:-$REPO_DIR/.build/release/blobctl}
[ -x "$BLOBCTL" ] || die "no blobctl at $BLOBCTL (swift build -c release --product blobctl, or set BLOBCTL)"

CORPUS=${CORPUS:-}
if [ -z "$CORPUS" ]; then
  if [ -f /work/corpus/base.tar ]; then CORPUS=/work/corpus; else CORPUS=$HOME/.cache/blobstore-corpus; fi
fi
if [ ! -f "$CORPUS/base.tar" ] || [ ! -f "$CORPUS/app-v1.tar" ] || [ ! -f "$CORPUS/app-v2.tar" ]; then
  log "building the corpus in $CORPUS"
  bash "$REPO_DIR/../shared/bench/make-corpus.sh" "$CORPUS" >&2
fi

PARENT=$(scratch_parent)
CACHE=${CACHE:-$PARENT/containerd-bench-images}
W=$(mktemp -d "$PARENT/containerd-bench.XXXXXX")
# containerd's sockets need short paths.
D=$(mktemp -d /tmp/bs-ctrd-bench.XXXX)
CTRD_PID=; PROXY_PID=; SERVE_PID=
RES=$W/results.tsv; : > "$RES"   # engine key value
rec() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$RES"; }

cleanup() {
  local rc=$?
  if [ -n "$CTRD_PID" ] && kill -0 "$CTRD_PID" 2>/dev/null; then
    for t in $(ctr --address "$D/ctrd.sock" tasks ls -q 2>/dev/null); do ctr --address "$D/ctrd.sock" tasks kill -s SIGKILL "$t" 2>/dev/null || true; done
  fi
  stop_pid "$CTRD_PID" 30
  stop_pid "$PROXY_PID" 30
  stop_pid "$SERVE_PID" 30
  for m in $(awk -v d="$D/" -v w="$W/" 'index($2, d) == 1 || index($2, w) == 1 {print $2}' /proc/mounts | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  rm -rf "$D" 2>/dev/null || true
  if [ "$KEEP" = 1 ]; then log "kept $W"; else rm -rf "$W"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cp "$BLOBCTL" "$W/blobctl"
BC=$W/blobctl
log "scratch $W, containerd dirs $D, images in $CACHE, blobctl $BLOBCTL ($(sha256sum "$BLOBCTL" | cut -c1-12))"

# ---- images -------------------------------------------------------------------------------
mkdir -p "$CACHE"
"$PY" - "$CORPUS" "$CACHE" "$MAX" "$BUSYBOX" "$CHANGES" <<'PYEOF'
import gzip, hashlib, io, json, os, subprocess, sys, tarfile
corpus, cache, count, busybox, changes = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
blobs = os.path.join(cache, "layout", "blobs", "sha256")
os.makedirs(blobs, exist_ok=True)
state_path = os.path.join(cache, "layers.json")
state = json.load(open(state_path)) if os.path.exists(state_path) else {}

def gz_layer(name, write_tar):
    """A layer's (gzip digest, size, diff id), built once: tar to a file, gzip -6 -n."""
    if name in state and os.path.exists(os.path.join(blobs, state[name]["digest"].split(":")[1])):
        return state[name]
    raw = os.path.join(cache, name + ".tar")
    with open(raw, "wb") as f:
        write_tar(f)
    diff = hashlib.sha256()
    with open(raw, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            diff.update(block)
    subprocess.run(["gzip", "-6", "-n", "-f", raw], check=True)
    digest = hashlib.sha256()
    size = 0
    with open(raw + ".gz", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block); size += len(block)
    os.rename(raw + ".gz", os.path.join(blobs, digest.hexdigest()))
    state[name] = {"digest": "sha256:" + digest.hexdigest(), "size": size, "diff": "sha256:" + diff.hexdigest()}
    json.dump(state, open(state_path, "w"))
    print(f"[cbench] built layer {name}: {size} bytes gzip", file=sys.stderr)
    return state[name]

def copy_file(path):
    return lambda f: f.write(open(path, "rb").read())

def app_version(k):
    source = os.path.join(corpus, "app-v1.tar" if k % 2 else "app-v2.tar")
    def write(out):
        changed = 0
        with tarfile.open(source, "r:") as src, tarfile.open(fileobj=out, mode="w:", format=tarfile.PAX_FORMAT) as dst:
            for member in src:
                data = src.extractfile(member).read() if member.isreg() else None
                # "one": the first .py file of at least 4 KiB gains a line of the same length
                # every version. "grow": the first five gain k lines and a new mtime, so the
                # gzip streams of two versions part after the first change.
                wanted = 1 if changes == "one" else 5
                if changed < wanted and member.isreg() and member.name.endswith(".py") and member.size >= 4096:
                    data = data + (f"\n# build {k}\n" * (1 if changes == "one" else k)).encode()
                    member.size = len(data)
                    if changes == "grow":
                        member.mtime = 1700000000 + k
                    changed += 1
                dst.addfile(member, io.BytesIO(data) if data is not None else None)
            version = f"{k}\n".encode()
            info = tarfile.TarInfo("VERSION"); info.size = len(version); info.mtime = 1700000000
            dst.addfile(info, io.BytesIO(version))
    return write

def tools(out):
    with tarfile.open(fileobj=out, mode="w:", format=tarfile.PAX_FORMAT) as t:
        info = tarfile.TarInfo("bb"); info.type = tarfile.DIRTYPE; info.mode = 0o755; info.mtime = 1700000000
        t.addfile(info)
        data = open(busybox, "rb").read()
        info = tarfile.TarInfo("bb/busybox"); info.size = len(data); info.mode = 0o755; info.mtime = 1700000000
        t.addfile(info, io.BytesIO(data))

def blob(data):
    d = hashlib.sha256(data).hexdigest()
    open(os.path.join(blobs, d), "wb").write(data)
    return {"digest": "sha256:" + d, "size": len(data)}

base = gz_layer("base", copy_file(os.path.join(corpus, "base.tar")))
tool = gz_layer("tools", tools)
manifests = []
for k in range(1, count + 1):
    app = gz_layer(f"app-{k}" if changes == "one" else f"app-{k}-{changes}", app_version(k))
    layers = [base, app, tool]
    config = blob(json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bb/busybox", "sh"]},
                              "rootfs": {"type": "layers", "diff_ids": [l["diff"] for l in layers]}}, sort_keys=True).encode())
    manifest = blob(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                "config": dict(mediaType="application/vnd.oci.image.config.v1+json", **config),
                                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": l["digest"], "size": l["size"]} for l in layers]},
                               sort_keys=True).encode())
    manifests.append(dict(mediaType="application/vnd.oci.image.manifest.v1+json", annotations={"org.opencontainers.image.ref.name": f"v{k}"}, **manifest))
json.dump({"schemaVersion": 2, "manifests": manifests}, open(os.path.join(cache, "layout", "index.json"), "w"))
open(os.path.join(cache, "layout", "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
PYEOF

# ---- the registry ---------------------------------------------------------------------------
"$BC" image import --store "$W/registry" "$CACHE/layout" --name bench/app >/dev/null
PORT=$(free_port)
"$BC" serve --store "$W/registry" --addr "127.0.0.1:$PORT" > "$W/serve.log" 2>&1 &
SERVE_PID=$!
wait_ready "$PORT" "$SERVE_PID" "$W/serve.log"
REG=127.0.0.1:$PORT/bench/app

# ---- engines --------------------------------------------------------------------------------
CTR="ctr --address $D/ctrd.sock"
start_containerd() { # ENGINE
  local engine=$1 i
  rm -rf "$D/root" "$D/state"
  {
    echo 'version = 2'
    echo "root = \"$D/root\""
    echo "state = \"$D/state\""
    if [ "$engine" = blobstore ]; then
      echo 'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.content.v1.content"]'
    else
      echo 'disabled_plugins = ["io.containerd.grpc.v1.cri"]'
    fi
    echo "[grpc]"; echo "  address = \"$D/ctrd.sock\""
    echo "[ttrpc]"; echo "  address = \"$D/ctrd.sock.ttrpc\""
    if [ "$engine" = blobstore ]; then
      echo '[proxy_plugins.blobstore-content]'; echo '  type = "content"'; echo "  address = \"$D/proxy.sock\""
      echo '[proxy_plugins.blobstore]'; echo '  type = "snapshot"'; echo "  address = \"$D/proxy.sock\""
    fi
  } > "$D/config.toml"
  containerd --config "$D/config.toml" > "$W/containerd-$engine.log" 2>&1 &
  CTRD_PID=$!
  for i in $(seq 1 300); do $CTR version >/dev/null 2>&1 && return 0; kill -0 "$CTRD_PID" 2>/dev/null || die "containerd exited: $(tail -5 "$W/containerd-$engine.log")"; sleep 0.1; done
  die "containerd did not come up"
}
start_proxy() { # SETTLE_SECONDS
  local before i
  touch "$W/proxy.log"
  before=$(grep -c 'containerd proxy listening' "$W/proxy.log" || true)
  "$BC" containerd-proxy --store "$W/bs-store" --socket "$D/proxy.sock" --settle-after "$1" >> "$W/proxy.log" 2>&1 &
  PROXY_PID=$!
  for i in $(seq 1 300); do
    [ "$(grep -c 'containerd proxy listening' "$W/proxy.log" || true)" -gt "$before" ] && return 0
    kill -0 "$PROXY_PID" 2>/dev/null || die "proxy exited: $(tail -5 "$W/proxy.log")"; sleep 0.1
  done
  die "proxy did not come up"
}
wait_reachable() { # containerd redials a restarted proxy with a backoff of up to 3 s
  local i
  for i in $(seq 1 100); do $CTR snapshots --snapshotter blobstore ls >/dev/null 2>&1 && return 0; sleep 0.1; done
  die "containerd did not reach the restarted proxy"
}
wait_archived() { # until every committed BlobStore snapshot has its layer in the store
  local i
  for i in $(seq 1 3000); do
    "$PY" -c 'import json, sys; c = json.load(open(sys.argv[1])); sys.exit(any(s["kind"] == "committed" and not s.get("layer") for s in c["snapshots"]))' \
      "$W/bs-store/containerd/snapshots/catalog.json" && return 0
    sleep 0.1
  done
  die "snapshots still not archived after 300 s"
}
bytes() { du -s -B1 "$@" 2>/dev/null | awk '{ s += $1 } END { printf "%.0f\n", s }'; }
trees() { # allocated bytes of the BlobStore snapshot trees (fs.settled: one being removed)
  local t=0 d
  for d in "$W"/bs-store/containerd/snapshots/*/fs "$W"/bs-store/containerd/snapshots/*/fs.settled; do [ -d "$d" ] && t=$((t + $(bytes "$d"))); done
  echo $t
}
now() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", (b - a) / 1e9 }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.4f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

run_engine() { # ENGINE
  local engine=$1 snap=() k t0 t1 total=0 n s cold starts read_wall readb
  [ "$engine" = blobstore ] && snap=(--snapshotter blobstore)
  if [ "$engine" = blobstore ]; then "$BC" init --store "$W/bs-store" >/dev/null; start_proxy 3600; fi
  start_containerd "$engine"
  for k in $(seq 1 "$MAX"); do
    sync
    t0=$(now)
    $CTR images pull --plain-http "${snap[@]}" "$REG:v$k" > "$W/pull-$engine.log" 2>&1 || die "$engine: pull of v$k failed: $(tail -3 "$W/pull-$engine.log")"
    t1=$(now)
    rec "$engine" "pull.v$k" "$(secs "$t0" "$t1")"
    total=$(awk -v a="$total" -v b="$(secs "$t0" "$t1")" 'BEGIN { print a + b }')
    for n in $COUNTS; do
      if [ "$n" = "$k" ]; then
        sync
        rec "$engine" "pull_total.$n" "$total"
        if [ "$engine" = blobstore ]; then
          t0=$(now); wait_archived; t1=$(now)
          rec "$engine" "archive_wait.$n" "$(secs "$t0" "$t1")"
          sync
          s=$(bytes "$W/bs-store" "$D/root")
          rec "$engine" "bytes.$n" "$s"
          rec "$engine" "bytes_settled.$n" "$((s - $(trees)))"
        else
          rec "$engine" "bytes.$n" "$(bytes "$D/root")"
        fi
        log "$engine: $n image(s) pulled in ${total}s"
      fi
    done
  done
  if [ "$engine" = blobstore ]; then
    # Settle for real: restarted with --settle-after 1, every idle tree goes.
    stop_pid "$PROXY_PID" 30
    start_proxy 1
    wait_reachable
    for i in $(seq 1 100); do [ "$(trees)" = 0 ] && break; sleep 0.2; done
    sync
    rec "$engine" "bytes_settled_measured.$MAX" "$(bytes "$W/bs-store" "$D/root")"
    sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
    t0=$(now); $CTR run --rm "${snap[@]}" "$REG:v1" cold /bb/busybox true >/dev/null 2> "$W/run.err" || die "cold start failed: $(cat "$W/run.err")"; t1=$(now)
    rec "$engine" "start_cold" "$(secs "$t0" "$t1")"
    # Back to the usual policy, so the starts below find the trees.
    stop_pid "$PROXY_PID" 30
    start_proxy 3600
    wait_reachable
  fi
  $CTR run --rm "${snap[@]}" "$REG:v1" warm /bb/busybox true >/dev/null 2> "$W/run.err" || die "$engine: run failed: $(cat "$W/run.err")"
  starts=$W/starts-$engine; : > "$starts"
  for i in $(seq 1 "$START_RUNS"); do
    sync
    t0=$(now); $CTR run --rm "${snap[@]}" "$REG:v1" "s$i" /bb/busybox true >/dev/null 2> "$W/run.err" || die "$engine: start $i failed: $(cat "$W/run.err")"; t1=$(now)
    secs "$t0" "$t1" >> "$starts"
  done
  rec "$engine" "start_median" "$(median < "$starts")"
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  t0=$(now)
  readb=$($CTR run --rm "${snap[@]}" "$REG:v1" reader /bb/busybox sh -c \
    '/bb/busybox find /usr /app -type f -exec /bb/busybox cat {} + | /bb/busybox wc -c' 2>/dev/null | tr -d ' \r\n')
  t1=$(now)
  [[ "$readb" =~ ^[0-9]+$ ]] || die "$engine: the read run printed '$readb'"
  rec "$engine" "read_bytes" "$readb"
  rec "$engine" "read_wall" "$(secs "$t0" "$t1")"
  stop_pid "$CTRD_PID" 30; CTRD_PID=
  if [ "$engine" = blobstore ]; then stop_pid "$PROXY_PID" 30; PROXY_PID=; fi
  for m in $(awk -v d="$D/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r); do umount "$m" 2>/dev/null || umount -l "$m" || true; done
}

for engine in $ENGINES; do run_engine "$engine"; done
[ "$ENGINES" = "overlayfs blobstore" ] || { cat "$RES"; exit 0; } # the report compares both

# ---- report ---------------------------------------------------------------------------------
"$PY" - "$RES" "$COUNTS" "$MAX" "${OUT_JSON:-}" "$CHANGES" <<'PYEOF'
import json, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
r = {(e, k): float(v) for e, k, v in rows}
counts = [int(n) for n in sys.argv[2].split()]
top = int(sys.argv[3])
o, b = "overlayfs", "blobstore"
mib = lambda x: f"{x / 2**20:,.0f} MiB"
print("containerd + overlayfs (its own content store) vs containerd + BlobStore (content store and snapshotter), same images, same run")
print(f"versions differ by: {'one file, a line of the same length' if sys.argv[5] == 'one' else 'five files, k lines each, new mtimes'} (CHANGES={sys.argv[5]})")
print()
print(f"{'images':>6} | {'pull+unpack: overlayfs':>22} | {'BlobStore':>9} | {'disk: overlayfs':>15} | {'BlobStore, unpacked':>19} | {'BlobStore, settled':>18} | {'settled / overlayfs':>19}")
for n in counts:
    po, pb = r[(o, f"pull_total.{n}")], r[(b, f"pull_total.{n}")]
    bo, bb, bs = r[(o, f"bytes.{n}")], r[(b, f"bytes.{n}")], r[(b, f"bytes_settled.{n}")]
    print(f"{n:>6} | {po:>21.1f}s | {pb:>8.1f}s | {mib(bo):>15} | {mib(bb):>19} | {mib(bs):>18} | {bs / bo:>18.2f}x")
print()
print("BlobStore archives committed snapshots in the background; after the last pull of each row it finished " +
      ", ".join(f"{r[(b, f'archive_wait.{n}')]:.1f}s" for n in counts) + " later (not in the pull times above)")
print(f"settled for real after {top} images (proxy restarted with --settle-after 1): {mib(r[(b, f'bytes_settled_measured.{top}')])}")
so, sb = r[(o, "start_median")], r[(b, "start_median")]
print(f"container start (ctr run --rm ... true), median: overlayfs {so:.3f}s, BlobStore {sb:.3f}s; BlobStore's first start after settling (unpacks the image again): {r[(b, 'start_cold')]:.3f}s")
for e in (o, b):
    wall = r[(e, "read_wall")] - r[(e, "start_median")]
    print(f"read inside a container, caches dropped ({e}): {r[(e, 'read_bytes')] / 2**20:,.0f} MiB in {wall:.2f}s = {r[(e, 'read_bytes')] / 2**20 / wall:,.0f} MiB/s")
if sys.argv[4]:
    json.dump({f"{e}.{k}": v for (e, k), v in r.items()}, open(sys.argv[4], "w"), indent=1, sort_keys=True)
PYEOF

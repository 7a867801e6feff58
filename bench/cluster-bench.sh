#!/usr/bin/env bash
# bench/cluster-bench.sh [CORPUS_DIR]
#
# Cluster benchmark (issue 14), one run, one machine: pushes and pulls two images of the
# layer-tar corpus (v1 = base + app-v1 + small, v2 = base + app-v2 + small-v2) through
#
#   embedded     blobctl serve on an embedded store (LMDB + local packs)
#   cluster-1    one blobctl serve node: index in PostgreSQL 15, packs in Ceph (radosgw)
#   cluster-3    three blobctl serve nodes on the same cluster; each blob goes to (and comes
#                back from) node i % 3, all at once
#   registry-s3  docker-registry (distribution 2.8) with its S3 driver on the same Ceph
#
# with curl as the client (POST, then PUT of the whole blob; GET of every blob), so the
# servers are compared under the same client. Figures: MB/s (layer bytes moved / wall
# seconds; v2 counts only what v1 had not pushed, as a client skips a blob whose HEAD
# answers 200), server CPU seconds per 100 MB moved (utime+stime of all server processes,
# from /proc), and stored bytes after v2: the bucket's objects (a LIST), plus for blobstore
# the index's tables in PostgreSQL (pg_total_relation_size) or the embedded store's `du`.
# Then garbage collection: how soon a deleted image's bytes leave the bucket (three nodes
# with default settings, beside docker-registry's offline `garbage-collect`), and how fast
# one collection removes 2,000 small pack objects (beside one DELETE per object).
#
# Needs: postgresql-15, the Ceph packages (see shared/services/start-ceph.sh), docker-registry,
# curl, python3 with boto3 (for listing the buckets). On 2 cores three nodes cannot scale;
# the README's "Scaling out" reads the CPU per MB instead.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
BLOBCTL=${BLOBCTL:-$REPO/.build/release/blobctl}
CORPUS=${1:-$HOME/.cache/blobstore-corpus}
SHARED=${SHARED:-$REPO/../shared}
[ -f "$CORPUS/corpus.tsv" ] || bash "$SHARED/bench/make-corpus.sh" "$CORPUS"
PARENT=${BENCH_TMPDIR:-$([ -d /work ] && echo /work/tmp-bench || echo "${TMPDIR:-/tmp}")}
mkdir -p "$PARENT"
WORK=$(mktemp -d "$PARENT/cluster-bench.XXXXXX")
chmod 755 "$WORK"
PIDS=()
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	[ -n "${PG_PID:-}" ] && kill -INT "$PG_PID" 2>/dev/null || true
	for k in rgw osd mgr mon; do [ -f "$WORK/ceph/pids.$k" ] && kill $(cat "$WORK/ceph/pids.$k") 2>/dev/null || true; sleep 0.3; done
	sleep 1
	[ "${KEEP:-0}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT

# --- PostgreSQL and Ceph ----------------------------------------------------------------
PG_PORT=$(free_port)
mkdir -p "$WORK/pg" && chown postgres:postgres "$WORK/pg"
runuser -u postgres -- /usr/lib/postgresql/15/bin/initdb -D "$WORK/pg/data" -U blobstore --auth=trust >/dev/null
setpriv --reuid=postgres --regid=postgres --init-groups -- /usr/lib/postgresql/15/bin/postgres -D "$WORK/pg/data" \
	-p "$PG_PORT" -k "$WORK/pg" -c listen_addresses=127.0.0.1 >"$WORK/pg.log" 2>&1 &
PG_PID=$!
until /usr/lib/postgresql/15/bin/pg_isready -h 127.0.0.1 -p "$PG_PORT" -q; do sleep 0.2; done
RGW_PORT=$(free_port); MON_PORT=$(free_port)
DIR=$WORK/ceph RGW_PORT=$RGW_PORT MON_PORT=$MON_PORT WITH_MGR=0 bash "$SHARED/services/start-ceph.sh" >"$WORK/ceph.log" 2>&1
S3=http://127.0.0.1:$RGW_PORT
bucket_bytes() { python3 - "$S3" "$1" <<'PY'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], aws_access_key_id="CIACCESSKEY", aws_secret_access_key="CISECRETKEY", region_name="default")
total = 0
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[2]):
    total += sum(o["Size"] for o in page.get("Contents", []))
print(total)
PY
}
make_bucket() { python3 -c "import boto3; boto3.client('s3', endpoint_url='$S3', aws_access_key_id='CIACCESSKEY', aws_secret_access_key='CISECRETKEY', region_name='default').create_bucket(Bucket='$1')"; }

# --- the two images -----------------------------------------------------------------------
digest_of() { awk -v n="$1" '$1 == n { print "sha256:" $3 }' "$CORPUS/corpus.tsv"; }
size_of() { awk -v n="$1" '$1 == n { print $2 }' "$CORPUS/corpus.tsv"; }
make_image() { # name layers... → $WORK/NAME.config, $WORK/NAME.manifest
	local name=$1; shift
	local diffs="" layers=""
	for l in "$@"; do
		diffs="$diffs\"$(digest_of "$l")\","
		layers="$layers{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"$(digest_of "$l")\",\"size\":$(size_of "$l")},"
	done
	printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[%s]}}' "${diffs%,}" >"$WORK/$name.config"
	local cd cs; cd=sha256:$(sha256sum "$WORK/$name.config" | cut -d' ' -f1); cs=$(stat -c %s "$WORK/$name.config")
	printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[%s]}' \
		"$cd" "$cs" "${layers%,}" >"$WORK/$name.manifest"
	echo "$WORK/$name.config" >"$WORK/$name.files"
	for l in "$@"; do echo "$CORPUS/$l" >>"$WORK/$name.files"; done
}
declare -A DIGESTS
make_image v1 base.tar app-v1.tar small.tar
make_image v2 base.tar app-v2.tar small-v2.tar
for f in $(cat "$WORK/v1.files" "$WORK/v2.files"); do DIGESTS[$f]=sha256:$(sha256sum "$f" | cut -d' ' -f1); done

# push_blob URL FILE: HEAD (skip when present), POST, PUT the whole file. (Digests come
# from corpus.tsv or are computed before the clock starts: a client knows them.)
push_blob() {
	local base=$1 file=$2 d=${DIGESTS[$2]}
	[ "$(curl -s -o /dev/null -w '%{http_code}' -I "$base/v2/bench/app/blobs/$d")" = 200 ] && return 0
	local loc
	loc=$(curl -s -D - -o /dev/null -X POST "$base/v2/bench/app/blobs/uploads/" | tr -d '\r' | awk -F': ' 'tolower($1)=="location" {print $2}')
	case "$loc" in http*) ;; *) loc=$base$loc ;; esac
	case "$loc" in *\?*) loc="$loc&digest=$d" ;; *) loc="$loc?digest=$d" ;; esac
	local code; code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/octet-stream' -T "$file" "$loc")
	[ "$code" = 201 ] || { echo "push of $file to $base: HTTP $code" >&2; exit 1; }
}
# moved_bytes IMAGE [SKIP_IMAGE]: bytes of IMAGE's files not in SKIP_IMAGE's.
moved_bytes() { local t=0; while read -r f; do if [ -z "${2:-}" ] || ! grep -qxF "$f" "$WORK/$2.files"; then t=$((t + $(stat -c %s "$f"))); fi; done <"$WORK/$1.files"; echo "$t"; }
cpu_ticks() { local t=0; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }

# run_config NAME URLS... (servers already up; SERVER_PIDS set)
RESULTS=()
report() { RESULTS+=("$1"); echo "$1" >&2; } # the summary at the end, progress on stderr
run_config() {
	local name=$1; shift
	local urls=("$@") n=$#
	for image in v1 v2; do
		local skip=""; [ "$image" = v2 ] && skip=v1
		local bytes; bytes=$(moved_bytes "$image" "$skip")
		local c0 t0 t1 c1 i=0 jobs=()
		c0=$(cpu_ticks "${SERVER_PIDS[@]}"); t0=$(date +%s.%N)
		while read -r f; do push_blob "${urls[$((i % n))]}" "$f" & jobs+=($!); i=$((i + 1)); done <"$WORK/$image.files"
		for j in "${jobs[@]}"; do wait "$j"; done
		curl -sf -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary @"$WORK/$image.manifest" "${urls[0]}/v2/bench/app/manifests/$image"
		t1=$(date +%s.%N); c1=$(cpu_ticks "${SERVER_PIDS[@]}")
		report "$(python3 -c "b=$bytes; w=$t1-$t0; c=($c1-$c0)/100; print(f'$name push $image: {b/1e6/w:7.1f} MB/s  ({b/1e6:.0f} MB in {w:.2f} s; server CPU {c/(b/1e8):.2f} s per 100 MB)')")"
	done
	local bytes; bytes=$(moved_bytes v1)
	local c0 t0 t1 c1 i=0 jobs=() digests=()
	while read -r f; do digests+=("${DIGESTS[$f]}"); done <"$WORK/v1.files"
	c0=$(cpu_ticks "${SERVER_PIDS[@]}"); t0=$(date +%s.%N)
	for d in "${digests[@]}"; do
		curl -sf -o /dev/null "${urls[$((i % n))]}/v2/bench/app/blobs/$d" & jobs+=($!); i=$((i + 1))
	done
	for j in "${jobs[@]}"; do wait "$j"; done
	t1=$(date +%s.%N); c1=$(cpu_ticks "${SERVER_PIDS[@]}")
	report "$(python3 -c "b=$bytes; w=$t1-$t0; c=($c1-$c0)/100; print(f'$name pull v1: {b/1e6/w:7.1f} MB/s  ({b/1e6:.0f} MB in {w:.2f} s; server CPU {c/(b/1e8):.2f} s per 100 MB)')")"
}
serve() { # CONFIG_OR_ROOT PORT → pid
	"$BLOBCTL" serve --store "$1" --addr "127.0.0.1:$2" >"$WORK/serve-$2.log" 2>&1 &
	local pid=$!; PIDS+=("$pid")
	until curl -s -o /dev/null "http://127.0.0.1:$2/v2/"; do sleep 0.1; done
	echo "$pid"
}

# --- embedded ---------------------------------------------------------------------------
"$BLOBCTL" init --store "$WORK/embedded" >/dev/null
P=$(free_port); SERVER_PIDS=("$(serve "$WORK/embedded" "$P")")
run_config embedded "http://127.0.0.1:$P"
kill "${SERVER_PIDS[0]}"; wait "${SERVER_PIDS[0]}" 2>/dev/null || true
report "embedded stored after v2: $(du -sb "$WORK/embedded" | cut -f1) bytes (du of the store)"

# --- cluster with 1 and 3 nodes -----------------------------------------------------------
for nodes in 1 3; do
	schema=bench$nodes; bucket=blobstore$nodes
	urls=(); SERVER_PIDS=()
	for n in $(seq 0 $((nodes - 1))); do
		cat >"$WORK/c$nodes-node$n.json" <<EOF
{"index": {"url": "postgres://blobstore@127.0.0.1:$PG_PORT/postgres", "schema": "$schema"},
 "packs": {"s3": {"endpoint": "$S3", "bucket": "$bucket", "accessKey": "CIACCESSKEY", "secretKey": "CISECRETKEY"}},
 "node": {"directory": "$WORK/c$nodes-node$n"}}
EOF
	done
	"$BLOBCTL" init --cluster "$WORK/c$nodes-node0.json" >/dev/null
	for n in $(seq 0 $((nodes - 1))); do
		P=$(free_port); SERVER_PIDS+=("$(serve "$WORK/c$nodes-node$n.json" "$P")"); urls+=("http://127.0.0.1:$P")
	done
	run_config "cluster-$nodes" "${urls[@]}"
	index=$(psql -h 127.0.0.1 -p "$PG_PORT" -U blobstore -d postgres -Atc \
		"SELECT coalesce(sum(pg_total_relation_size(c.oid)),0) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = '$schema' AND c.relkind = 'r'")
	rows=$(psql -h 127.0.0.1 -p "$PG_PORT" -U blobstore -d postgres -Atc "SELECT (SELECT count(*) FROM $schema.chunks) || ' chunk rows, ' || (SELECT count(*) FROM $schema.blobs) || ' blob rows'")
	report "cluster-$nodes stored after v2: $(bucket_bytes "$bucket") bytes in the bucket + $index bytes of index tables ($rows)"
	if [ "$nodes" = 3 ]; then
		# GC with no time window: both images deleted through the registry while the nodes
		# run with default settings (each collects every 60 s); how long until the bucket
		# holds under 5% of what it held.
		before=$(bucket_bytes "$bucket")
		t0=$(date +%s.%N)
		for image in v1 v2; do
			md=sha256:$(sha256sum "$WORK/$image.manifest" | cut -d' ' -f1)
			curl -sf -o /dev/null -X DELETE "${urls[0]}/v2/bench/app/manifests/$md"
		done
		now=$before
		while [ "$now" -gt $((before / 20)) ] && python3 -c "import sys,time; sys.exit(0 if time.time() - $t0 < 180 else 1)"; do
			sleep 1; now=$(bucket_bytes "$bucket")
		done
		report "$(python3 -c "import time; print(f'cluster-3 both images deleted: bucket {$before/1e6:.0f} MB → {$now/1e6:.1f} MB {time.time() - $t0:.0f} s after the DELETEs (background gc every 60 s on each node, no read-only mode)')")"
	fi
	for p in "${SERVER_PIDS[@]}"; do kill "$p"; wait "$p" 2>/dev/null || true; done
done

# --- deletes: many small pack objects freed by one collection ----------------------------
# 2,000 small blobs, each `put` its own pack object, all removed; one `gc` frees them
# (DeleteObjects, 1,000 keys a request). Baseline, same Ceph: one DELETE per object, as a
# registry that deletes blob by blob does (boto3, one connection).
SMALL=$WORK/small; mkdir -p "$SMALL"
python3 - "$SMALL" <<'PY'
import os, sys
for i in range(2000):
    with open(os.path.join(sys.argv[1], f"s{i:04d}"), "wb") as f: f.write(os.urandom(8192))
PY
cfg=$WORK/c1-node0.json
"$BLOBCTL" put --store "$cfg" --json "$SMALL"/s* | grep -o 'sha256:[0-9a-f]*' >"$WORK/small.digests"
objects=$(python3 - "$S3" <<'PY'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], aws_access_key_id="CIACCESSKEY", aws_secret_access_key="CISECRETKEY", region_name="default")
print(sum(len(p.get("Contents", [])) for p in s3.get_paginator("list_objects_v2").paginate(Bucket="blobstore1")))
PY
)
xargs "$BLOBCTL" rm --store "$cfg" <"$WORK/small.digests" >/dev/null
t0=$(date +%s.%N)
"$BLOBCTL" gc --store "$cfg" --json >"$WORK/gc-small.json"
t1=$(date +%s.%N)
report "$(python3 - "$WORK/gc-small.json" "$objects" "$t0" "$t1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); objects = int(sys.argv[2]); w = float(sys.argv[4]) - float(sys.argv[3])
n, d = r["packsRemoved"], r["packRemovalSeconds"]
print(f"cluster gc of 2,000 removed small blobs: {n} of {objects} pack objects removed; deletes {d:.2f} s ({n / d:.0f} objects/s, DeleteObjects); whole gc {w:.2f} s ({n / w:.0f} objects/s, index work included)")
PY
)"
report "$(python3 - "$S3" <<'PY'
import sys, time, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], aws_access_key_id="CIACCESSKEY", aws_secret_access_key="CISECRETKEY", region_name="default")
s3.create_bucket(Bucket="deletes")
for i in range(2000): s3.put_object(Bucket="deletes", Key=f"o{i:04d}", Body=b"x" * 8192)
t = time.time()
for i in range(2000): s3.delete_object(Bucket="deletes", Key=f"o{i:04d}")
w = time.time() - t
print(f"baseline, one DELETE per object on the same Ceph: 2000 objects in {w:.2f} s ({2000 / w:.0f} objects/s)")
PY
)"

# --- docker-registry on S3 --------------------------------------------------------------
make_bucket registry
P=$(free_port)
cat >"$WORK/registry.yml" <<EOF
version: 0.1
log: {level: error}
storage:
  s3: {accesskey: CIACCESSKEY, secretkey: CISECRETKEY, region: us-east-1, regionendpoint: "$S3", bucket: registry, secure: false, v4auth: true}
  redirect: {disable: true}
  delete: {enabled: true}
http: {addr: "127.0.0.1:$P"}
EOF
env -u AWS_CA_BUNDLE docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
RP=$!; PIDS+=("$RP"); SERVER_PIDS=("$RP")
until curl -s -o /dev/null "http://127.0.0.1:$P/v2/"; do sleep 0.1; done
run_config registry-s3 "http://127.0.0.1:$P"
report "registry-s3 stored after v2: $(bucket_bytes registry) bytes in the bucket"
# Its GC, for the same deletion: manifests deleted, then the registry stopped (its GC
# needs the registry read-only or down) and `garbage-collect` run.
before=$(bucket_bytes registry)
for image in v1 v2; do
	md=sha256:$(sha256sum "$WORK/$image.manifest" | cut -d' ' -f1)
	curl -s --max-time 60 -o /dev/null -X DELETE "http://127.0.0.1:$P/v2/bench/app/manifests/$md" || echo "registry-s3: DELETE of manifest $image got no answer in 60 s" >&2
done
kill "$RP"; wait "$RP" 2>/dev/null || true
t0=$(date +%s.%N)
gc_status=0
env -u AWS_CA_BUNDLE timeout 180 docker-registry garbage-collect "$WORK/registry.yml" >"$WORK/registry-gc.log" 2>&1 || gc_status=$?
t1=$(date +%s.%N)
outcome=$([ "$gc_status" = 124 ] && echo "stopped after 180 s without finishing" || echo "exit $gc_status")
report "$(python3 -c "print(f'registry-s3 both images deleted: bucket {$before/1e6:.0f} MB → {$(bucket_bytes registry)/1e6:.1f} MB by garbage-collect in {$t1-$t0:.1f} s ($outcome), with the registry stopped')")"

echo "cluster-bench: corpus $CORPUS, $(nproc) cores, $(date -u +%FT%TZ)"
printf '%s\n' "${RESULTS[@]}"

#!/usr/bin/env bash
# bench/make-machine-corpus.sh [CORPUS_DIR]
#
# A second corpus for bench/ingest-bench.sh, built differently from
# ../shared/bench/make-corpus.sh (Debian .debs unpacked + PyPI wheels), so that
# figures are not tuned to one data set. It tars what this machine has installed,
# with the same five file names ingest-bench.sh expects:
#
#   base.tar      C headers, GCC's libraries, Perl and Python 3.11 standard
#                 libraries (/usr/include, /usr/lib/gcc, /usr/share/perl,
#                 /usr/lib/python3.11): text-heavy, unlike the .deb base
#   app-v1.tar    Swift's static libraries (/opt/swift/usr/lib/swift_static) and
#                 Python's dist-packages: object code and bytecode
#   app-v2.tar    app-v1 one "update" later, made here: every 7th file gets 64
#                 bytes inserted in its middle (shifting what follows, as a
#                 rebuild does), every 23rd file is dropped, and /usr/share/doc's
#                 first 8 MB of files are added
#   small.tar, small-v2.tar   /etc/apt, then with one file changed
#   corpus.tsv    name, bytes, sha256 of every tar
#
# Tars are written with deterministic options (sorted names, mtime 0, owner 0),
# so the same machine gives the same bytes. Default CORPUS_DIR:
# $HOME/.cache/blobstore-machine-corpus.
set -euo pipefail
export LC_ALL=C

OUT=$(realpath -m "${1:-$HOME/.cache/blobstore-machine-corpus}")
STAGE=$OUT/.stage
TAR=(tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --hard-dereference)
mkdir -p "$OUT"
rm -rf "$STAGE"
mkdir -p "$STAGE"
trap 'rm -rf "$STAGE"' EXIT

existing() { local p; for p in "$@"; do [ -e "$p" ] && printf '%s\n' "${p#/}"; done; }

echo "[machine-corpus] base.tar" >&2
mapfile -t base < <(existing /usr/include /usr/lib/gcc /usr/share/perl /usr/lib/python3.11)
[ ${#base[@]} -gt 0 ] || { echo "none of the base folders exist" >&2; exit 1; }
"${TAR[@]}" -C / -cf "$OUT/base.tar" "${base[@]}"

echo "[machine-corpus] app-v1.tar" >&2
mapfile -t app < <(existing /opt/swift/usr/lib/swift_static /usr/lib/python3/dist-packages)
[ ${#app[@]} -gt 0 ] || { echo "none of the app folders exist" >&2; exit 1; }
"${TAR[@]}" -C / -cf "$OUT/app-v1.tar" "${app[@]}"

echo "[machine-corpus] app-v2.tar (v1 changed)" >&2
mkdir -p "$STAGE/app"
tar -C "$STAGE/app" -xf "$OUT/app-v1.tar"
python3 - "$STAGE/app" <<'EOF'
import os, sys
root = sys.argv[1]
files = []
for d, _, names in os.walk(root):
    for n in names:
        p = os.path.join(d, n)
        if os.path.isfile(p) and not os.path.islink(p):
            files.append(p)
files.sort()
for i, p in enumerate(files):
    if i % 23 == 11:
        os.unlink(p)
    elif i % 7 == 3:
        data = open(p, "rb").read()
        mid = len(data) // 2
        open(p, "wb").write(data[:mid] + (b"# updated in v2, build %08d #" % i).ljust(64, b"-") + data[mid:])
EOF
mkdir -p "$STAGE/app/usr/share/doc-added"
total=0
while IFS= read -r f; do
  size=$(stat -c %s "$f")
  [ $((total + size)) -gt 8000000 ] && break
  dest="$STAGE/app/usr/share/doc-added/${f#/usr/share/doc/}"
  mkdir -p "$(dirname "$dest")"
  cp "$f" "$dest"
  total=$((total + size))
done < <(find /usr/share/doc -type f | sort)
mapfile -t app2 < <(cd "$STAGE/app" && ls -A)
"${TAR[@]}" -C "$STAGE/app" -cf "$OUT/app-v2.tar" "${app2[@]}"

echo "[machine-corpus] small.tar, small-v2.tar" >&2
mkdir -p "$STAGE/small"
cp -r /etc/apt "$STAGE/small/apt"
"${TAR[@]}" -C "$STAGE/small" -cf "$OUT/small.tar" apt
printf '# changed in v2\n' >> "$STAGE/small/apt/sources.list" 2>/dev/null || printf 'v2\n' > "$STAGE/small/apt/v2"
"${TAR[@]}" -C "$STAGE/small" -cf "$OUT/small-v2.tar" apt

(cd "$OUT" && for f in base.tar app-v1.tar app-v2.tar small.tar small-v2.tar; do
   printf '%s\t%s\t%s\n' "$f" "$(stat -c %s "$f")" "$(sha256sum "$f" | cut -d' ' -f1)"
 done) > "$OUT/corpus.tsv"
cat "$OUT/corpus.tsv" >&2

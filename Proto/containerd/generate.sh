#!/usr/bin/env bash
# Proto/containerd/generate.sh: regenerates Sources/ContainerdProtocol/ (containerd 1.6's
# content and snapshots services, and the mount type) from the .proto files Debian's golang-github-containerd-containerd-dev
# installs under /usr/share/gocode/src. The generated files are committed; run this only to
# follow another containerd API version.
#
# The gogoproto import and options are stripped from a copy first (Go-only, nothing on the
# wire). Needs protoc (protobuf-compiler libprotobuf-dev) and the code generators: PLUGINS=DIR
# with protoc-gen-swift and protoc-gen-grpc-swift-2 at the versions Package.swift uses (see
# Proto/generate.sh, which builds them when PLUGINS is not given).
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${PLUGINS:?set PLUGINS to a directory holding protoc-gen-swift and protoc-gen-grpc-swift-2 (see Proto/generate.sh)}"
SRC=/usr/share/gocode/src
FILES="github.com/containerd/containerd/api/services/content/v1/content.proto
github.com/containerd/containerd/api/services/snapshots/v1/snapshots.proto
github.com/containerd/containerd/api/types/mount.proto"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
for FILE in $FILES; do
  [ -f "$SRC/$FILE" ] || { echo "no $SRC/$FILE: apt-get install golang-github-containerd-containerd-dev" >&2; exit 2; }
  mkdir -p "$WORK/$(dirname "$FILE")"
  cp "$SRC/$FILE" "$WORK/$FILE"
  sed -i -E \
    -e '/^import (weak )?"gogoproto\/gogo.proto";/d' \
    -e '/^\s*option \(gogoproto\.[a-z_]+\) = .*;/d' \
    -e 's/ \[\(gogoproto\.[a-z_]+\) = [^],]*(, \(gogoproto\.[a-z_]+\) = [^],]*)*\]//g' "$WORK/$FILE"
  if grep -n gogo "$WORK/$FILE"; then echo "gogoproto left in $FILE" >&2; exit 1; fi
done
OUT=Sources/ContainerdProtocol
mkdir -p "$OUT"
protoc -I "$WORK" -I /usr/include \
  --plugin=protoc-gen-swift="$PLUGINS/protoc-gen-swift" --swift_out="$OUT" --swift_opt=Visibility=Public,FileNaming=DropPath \
  --plugin=protoc-gen-grpc-swift="$PLUGINS/protoc-gen-grpc-swift-2" --grpc-swift_out="$OUT" \
  --grpc-swift_opt=Visibility=Public,Server=true,Client=true,FileNaming=DropPath \
  $FILES
rm -f "$OUT/mount.grpc.swift" # mount.proto has no service
ls -l "$OUT"

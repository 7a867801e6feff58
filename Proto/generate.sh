#!/usr/bin/env bash
# Proto/generate.sh: regenerates Sources/CSIProtocol/ (the CSI messages and gRPC service
# code) from Proto/csi.proto. The generated files are committed; run this only after
# changing the .proto.
#
# Needs protoc and the well-known types (Debian: protobuf-compiler libprotobuf-dev), and
# the two code generators at the versions Package.swift uses. PLUGINS=DIR names a
# directory holding protoc-gen-swift and protoc-gen-grpc-swift-2; without it they are
# built in a scratch package (about 10 minutes on 2 cores the first time).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc >/dev/null || { echo "protoc is missing: apt-get install protobuf-compiler libprotobuf-dev" >&2; exit 2; }
if [ -z "${PLUGINS:-}" ]; then
  TOOLS=${TOOLS_DIR:-/tmp/blobstore-protoc-tools}
  mkdir -p "$TOOLS/noop"
  cat > "$TOOLS/Package.swift" <<'SWIFT'
// swift-tools-version:6.0
import PackageDescription
let package = Package(
    name: "protoc-tools",
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", exact: "2.4.1"),
    ],
    targets: [.executableTarget(name: "noop", path: "noop")]
)
SWIFT
  echo 'print("")' > "$TOOLS/noop/main.swift"
  (cd "$TOOLS" && swift build -c release --product protoc-gen-swift && swift build -c release --product protoc-gen-grpc-swift-2)
  PLUGINS=$TOOLS/.build/release
fi
OUT=Sources/CSIProtocol
mkdir -p "$OUT"
protoc -I Proto -I /usr/include \
  --plugin=protoc-gen-swift="$PLUGINS/protoc-gen-swift" --swift_out="$OUT" --swift_opt=Visibility=Public \
  --plugin=protoc-gen-grpc-swift="$PLUGINS/protoc-gen-grpc-swift-2" --grpc-swift_out="$OUT" \
  --grpc-swift_opt=Visibility=Public,Server=true,Client=true \
  Proto/csi.proto
ls -l "$OUT"

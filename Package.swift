// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "BlobStore",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "BlobStore", targets: ["BlobStore"]),
        .library(name: "GC", targets: ["GC"]),
        .library(name: "BlobRegistry", targets: ["BlobRegistry"]),
        .library(name: "BlobFS", targets: ["BlobFS"]),
        .executable(name: "blobctl", targets: ["blobctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.0"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.0"),
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.0"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.0"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    ],
    targets: [
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CLMDB", providers: [.apt(["liblmdb-dev"])]),
        .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CFuse", pkgConfig: "fuse3", providers: [.apt(["libfuse3-dev"])]),
        .systemLibrary(name: "CMalloc"),
        .systemLibrary(name: "CXattr"),
        .systemLibrary(name: "CFileSync"),
        .target(
            name: "BlobStore",
            dependencies: [
                "CZstd", "CLMDB", "CCrypto", "CZlib", "CXattr", "CFileSync",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(name: "GC", dependencies: ["BlobStore"]),
        // An S3 client for cluster mode (issue 14): pack files as objects in Ceph's radosgw.
        // SHA-256, HMAC-SHA256 and MD5 come from libcrypto (CCrypto), which the store already
        // links, rather than swift-crypto, whose build costs minutes on 2 cores.
        .target(
            name: "ObjectStorage",
            dependencies: [
                "CCrypto",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Cluster mode's index engine: the store's databases in PostgreSQL (see IndexEngine).
        .target(
            name: "PostgresIndex",
            dependencies: [
                "BlobStore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Cluster mode: opens a Store over the PostgreSQL index and shared packs (a folder or S3).
        .target(name: "ClusterStore", dependencies: ["BlobStore", "PostgresIndex", "ObjectStorage", .product(name: "Logging", package: "swift-log")]),
        .target(
            name: "BlobRegistry",
            dependencies: [
                "BlobStore", "GC", "CMalloc",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(name: "BlobVolumes", dependencies: ["BlobStore", .product(name: "Logging", package: "swift-log")]),
        .target(
            name: "DockerVolumePlugin",
            dependencies: [
                "BlobStore", "BlobVolumes",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The CSI messages and services, generated from Proto/csi.proto by Proto/generate.sh.
        .target(
            name: "CSIProtocol",
            dependencies: [
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        .target(
            name: "CSIDriver",
            dependencies: [
                "BlobStore", "BlobVolumes", "CSIProtocol",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // containerd's content service, generated by Proto/containerd/generate.sh.
        .target(
            name: "ContainerdProtocol",
            dependencies: [
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        .target(
            name: "ContainerdProxy",
            dependencies: [
                "BlobStore", "ContainerdProtocol",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .target(
            name: "BlobFS",
            dependencies: ["BlobStore", "CFuse", .product(name: "Logging", package: "swift-log")]
        ),
        .executableTarget(
            name: "blobctl",
            dependencies: [
                "BlobStore", "GC", "BlobRegistry", "BlobFS", "BlobVolumes", "DockerVolumePlugin", "CSIDriver", "ContainerdProxy", "CMalloc", "ClusterStore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            plugins: ["BuildInfo"]
        ),
        // The commit blobctl is built from, for `blobctl --version --json`.
        .plugin(name: "BuildInfo", capability: .buildTool()),
        .executableTarget(name: "blobbench", dependencies: ["BlobStore", "GC", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .testTarget(
            name: "BlobStoreTests",
            dependencies: [
                "BlobStore", "GC", "BlobVolumes", "blobctl", "CSIProtocol", "ContainerdProtocol", "PostgresIndex", "ClusterStore", "ObjectStorage",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)

// libFuzzer targets for the parsers that read what other people made (Fuzz/): only with
// BLOBSTORE_FUZZ=1, since they must be built with -sanitize=fuzzer. `make fuzz` runs them.
if Context.environment["BLOBSTORE_FUZZ"] != nil {
    for name in ["FuzzTar", "FuzzManifest", "FuzzLayer"] {
        package.targets.append(.executableTarget(name: name, dependencies: ["BlobStore", "GC"], path: "Fuzz/\(name)"))
    }
}

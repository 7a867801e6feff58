// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "BlobStore",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "BlobStore", targets: ["BlobStore"]),
        .library(name: "GC", targets: ["GC"]),
        .executable(name: "blobctl", targets: ["blobctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CLMDB", providers: [.apt(["liblmdb-dev"])]),
        .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .target(
            name: "BlobStore",
            dependencies: [
                "CZstd", "CLMDB", "CCrypto",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]
        ),
        .target(name: "GC", dependencies: ["BlobStore"]),
        .executableTarget(
            name: "blobctl",
            dependencies: [
                "BlobStore", "GC",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "BlobStoreTests", dependencies: ["BlobStore", "GC", "blobctl"]),
    ],
    swiftLanguageModes: [.v6]
)

import ArgumentParser

struct Blobctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "blobctl",
        abstract: "A content-addressable, deduplicating store for container image blobs.",
        discussion: """
        Blobs are addressed by their OCI digest (sha256:<hex>) and stored as zstd-compressed,
        content-defined chunks shared between all blobs.

        Exit codes: 0 ok, 1 failure, 2 usage error, 3 not found, 4 integrity error
        (digest mismatch or damaged data).
        """,
        version: BlobctlVersion.string,
        subcommands: [
            Init.self, Put.self, Get.self, Stat.self, List.self, Remove.self,
            DiskUsage.self, GarbageCollect.self, Settle.self, Fsck.self, Migrate.self,
            Image.self, Container.self, Volume.self, VolumePlugin.self, CSI.self, ContainerdProxy.self, Serve.self, Mount.self, Umount.self, BenchRanges.self, Manual.self,
        ]
    )
}

import BlobStore
import Foundation

/// Makes containers the way a runtime leaves them: created on the image with an anonymous
/// volume at /data, a committed diff and, optionally, a snapshot of that volume. Removing
/// one then frees exactly the blobs only it used (the diff and the snapshot), which is the
/// garbage a `gc` after `container rm` has to find.
struct BenchContainer: Sendable {
    let store: Store
    let image: ImageReference

    /// A small tar with one random file, like a container's write layer after a short run.
    static func smallTar(_ path: String, seed: UInt64) throws -> [UInt8] {
        var g = BenchRandom(seed: seed)
        let size = Int.random(in: FillBlob.minSize...FillBlob.maxSize, using: &g)
        return try BenchImage.tar([(path, g.bytes(size))])
    }

    /// Creates container `name`. `file` is a scratch path for the tars (ingested from a
    /// file, as `container commit` does).
    func make(_ name: String, seed: UInt64, file: String, volumeSnapshot: Bool) throws {
        let info = try store.createContainer(name, image: image, mounts: [MountSpec(parsing: "/data")])
        // Ingest and reference under one lease, so no concurrent gc can take the blob in between.
        try store.withLease("bench commit \(name)") { _ in
            let diff = try ingest(try BenchContainer.smallTar("var/log/app.log", seed: seed), file: file)
            try store.setContainerDiff(name, diff)
            if volumeSnapshot, let volume = info.mounts.first?.volume {
                let snapshot = try ingest(try BenchContainer.smallTar("db/table", seed: ~seed), file: file)
                try store.setVolumeSnapshot(volume, snapshot)
            }
        }
    }

    private func ingest(_ bytes: [UInt8], file: String) throws -> Digest {
        try BenchImage.write(bytes, to: file)
        return try store.ingest(file: file).digest
    }
}

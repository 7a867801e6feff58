import ArgumentParser
import BlobStore
import ClusterStore
import Foundation
import GC

struct Migrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy the store into a new one on other engines: an embedded store into a cluster, or a cluster's store into a folder.",
        discussion: """
        DESTINATION is a cluster config file (its store is created, as by `init --cluster`) or a \
        folder that holds no store. Index entries and packs are copied as they are, then verified: \
        every index entry and pack byte is compared with the source by SHA-256, and the copy is \
        checked as `fsck` does (every count, and every chunk's SHA-256 unless --quick). Only a \
        verified copy is published: until then no node opens it, and running migrate again \
        starts over. The source is left as it was.

        Stop the processes using the source first: migrate refuses while one holds a lease or a \
        mount, and copies what was committed when it started. Unfinished resumable uploads are not \
        carried over; their clients start them again.

        Exits 0 when the copy is verified and published, 4 when verification failed, 75 when \
        the cluster's database or object storage is unreachable.
        """)

    @OptionGroup var store: StoreOptions
    @OptionGroup var output: OutputOptions

    @Argument(help: ArgumentHelp("A cluster config file, or a folder that holds no store.", valueName: "destination"))
    var destination: String

    @Flag(help: "Skip hashing every chunk of the copy (index entries and pack bytes are still compared).")
    var quick = false

    func run() throws {
        let source = try store.open()
        let created = try createDestination(config: source.config)
        let target = created.store, place = created.place
        let line = ProgressLine("copying packs")
        let report: StoreMigration.Report
        let check: FsckReport
        do {
            report = try StoreMigration.copy(from: source, to: target) { progress in
                if progress.phase == "packs" { line.update(progress.packBytes) }
            }
            line.finish()
            check = try StoreChecker(store: target).check(repair: false, verifyChunks: !quick)
        } catch {
            line.finish()
            created.discard()
            throw error
        }
        guard check.isHealthy else {
            Terminal.error("the copy in \(place) did not verify and is not published (`blobctl fsck` the source, then migrate again)")
            for item in (check.countMismatches + check.missing + check.corrupt).prefix(20) { Terminal.error("  \(item)") }
            created.discard()
            throw ExitCode(ExitStatus.integrity.rawValue)
        }
        try target.close()
        try created.publish()
        if output.json {
            try Terminal.printJSON(MigrateOutput(destination: place, copied: report, verified: check))
            return
        }
        let entries = report.entries.values.reduce(0, +)
        print("migrated \(store.root) → \(place) in \(String(format: "%.1f", report.seconds)) s")
        print("  index: \(entries) entries (\(report.entries["blobs"] ?? 0) blobs, \(report.entries["chunks"] ?? 0) chunks), identical to the source")
        print("  packs: \(report.packs) (\(Terminal.bytes(report.packBytes))), each read back and identical to the source")
        print("  fsck of the copy: \(check.blobs) blobs, \(check.chunks) chunks\(quick ? "" : " hashed"): healthy")
        if report.droppedUploads > 0 { print("  \(report.droppedUploads) unfinished resumable uploads not carried over") }
    }

    /// The new store, the step that makes it visible, what removes it after a failure, and
    /// how to name it.
    private struct Destination {
        var store: Store
        var publish: () throws -> Void
        var discard: () -> Void
        var place: String
    }

    private func createDestination(config: StoreConfig) throws -> Destination {
        if ClusterStore.isClusterConfig(destination) {
            let created = try ClusterStore.createUnpublished(configPath: destination, storeConfig: config, logger: store.logger())
            // What a failed copy wrote stays unpublished; the next migrate empties it.
            return Destination(store: created.store, publish: created.publish, discard: {}, place: "the cluster of \(destination)")
        }
        let folder = destination.hasPrefix("/") ? destination : FileManager.default.currentDirectoryPath + "/" + destination
        if folder == store.root { throw UsageError("the destination is the source store") }
        if let names = try? FileManager.default.contentsOfDirectory(atPath: folder), !names.isEmpty {
            throw BlobStoreError(.alreadyExists, "\(folder) is not empty; migrate into a new folder")
        }
        // Built beside the destination and renamed into place once verified: a folder at the
        // destination is always a whole store.
        let partial = folder + ".migrating"
        try? FileManager.default.removeItem(atPath: partial)
        let target = try Store.create(at: partial, config: config, logger: store.logger())
        let publish = {
            rmdir(folder)
            guard rename(partial, folder) == 0 else {
                throw BlobStoreError(.io, "rename \(partial) to \(folder): \(String(cString: strerror(errno)))")
            }
        }
        return Destination(store: target, publish: publish, discard: { try? FileManager.default.removeItem(atPath: partial) }, place: folder)
    }
}

private struct MigrateOutput: Encodable {
    var destination: String
    var copied: StoreMigration.Report
    var verified: FsckReport
}

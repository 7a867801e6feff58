import ArgumentParser
import BlobStore
import BlobVolumes
import Foundation

struct Volume: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Volumes: named or anonymous, each a tar snapshot in the store.",
        subcommands: [Create.self, Import.self, Export.self, List.self, Remove.self, Prune.self,
                      History.self, Restore.self, Forget.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a volume, empty or holding a directory of an image.")
        @OptionGroup var store: StoreOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "Volume name (random when left out).") var name: String?
        @Option(help: "IMAGE[:PATH]: start with the image's file system, or its directory PATH (e.g. app:v1:/srv/data); its files' chunks are shared, not copied.")
        var from: String?

        func run() throws {
            let s = try store.openOrCreate()
            let v: VolumeInfo
            if let from {
                let name = name ?? ObjectName.random()
                try ObjectName.validate(name, kind: "volume")
                if (try? s.volume(name)) != nil { throw BlobStoreError(.alreadyExists, "volume \(name) already exists") }
                try ImageSeed(parsing: from).seed(name, store: s, scratch: s.root + "/tmp/seed-" + name)
                v = try s.volume(name)
            } else {
                v = try s.createVolume(name)
            }
            if output.json { try Terminal.printJSON(v) } else { print(v.name) }
        }
    }

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Snapshot a directory or a tar file into a volume (created if missing).")
        @OptionGroup var store: StoreOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "Volume name.") var name: String
        @Argument(help: "A directory, or a tar file.") var source: String

        func run() throws {
            try ObjectName.validate(name, kind: "volume")
            let s = try store.openOrCreate()
            let result = try s.withLease("volume import \(name)") { _ -> IngestResult in
                let r = try VolumeSnapshot.ingest(source, into: s)
                try s.setVolumeSnapshot(name, r.digest)
                return r
            }
            if output.json { try Terminal.printJSON(result) } else { print("\(name): \(result.digest) (\(Terminal.bytes(result.size)))") }
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write a volume's snapshot (or an earlier version) as a tar.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "Volume name.") var name: String
        @Option(name: .shortAndLong, help: "The tar file to write (- for stdout).") var output: String
        @Option(help: "The version to export (see `volume history`); the current one when left out.") var version: Int?

        func run() throws {
            let s = try store.open()
            let digest: Digest
            if let version {
                digest = try s.volumeVersion(name, version)
            } else {
                guard let snapshot = try s.volume(name).snapshot else {
                    throw BlobStoreError(.notFound, "volume \(name) has no snapshot yet (import one first)")
                }
                digest = snapshot
            }
            try writeBlob(s, digest, to: output == "-" ? nil : output)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List volumes.")
        @OptionGroup var store: StoreOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            let all = try store.open().volumes()
            if output.json { try Terminal.printJSON(all); return }
            var rows = [["NAME", "KIND", "USERS", "SNAPSHOT"]]
            for v in all {
                rows.append([v.name, v.anonymous ? "anonymous" : "named", "\(v.users)", v.snapshot.map { "sha256:" + $0.short } ?? "-"])
            }
            print(Terminal.table(rows))
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove volumes no container uses.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "Volume names.") var names: [String]

        func validate() throws { if names.isEmpty { throw ValidationError("give at least one volume name") } }

        func run() throws {
            let s = try store.open()
            for name in names {
                try s.removeVolume(name)
                print("removed \(name)")
            }
        }
    }

    struct Prune: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove every volume no container uses.")
        @OptionGroup var store: StoreOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            let removed = try store.open().pruneVolumes()
            if output.json { try Terminal.printJSON(removed); return }
            print(removed.isEmpty ? "no unused volumes" : "removed \(removed.count) volume(s): " + removed.joined(separator: ", "))
        }
    }
}

/// Writes a whole blob to a file (replaced only on success) or to stdout.
func writeBlob(_ store: Store, _ digest: Digest, to path: String?) throws {
    guard let path else {
        try store.read(digest) { try writeAll(1, $0) }
        return
    }
    let partial = path + ".blobctl-partial"
    let fd = open(partial, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw BlobStoreError(.io, "cannot create \(partial): \(String(cString: strerror(errno)))") }
    do {
        try store.read(digest) { try writeAll(fd, $0) }
        guard fsync(fd) == 0 else { throw BlobStoreError(.io, "cannot write \(path): \(String(cString: strerror(errno)))") }
        close(fd)
        guard rename(partial, path) == 0 else { throw BlobStoreError(.io, "cannot rename to \(path): \(String(cString: strerror(errno)))") }
    } catch {
        close(fd)
        unlink(partial)
        throw error
    }
}

import ArgumentParser
import BlobStore
import Foundation

struct Container: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Containers: an image, a read-write layer (diff) and volume mounts.",
        subcommands: [Create.self, Commit.self, List.self, Inspect.self, Remove.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a container on an image.")
        @OptionGroup var store: StoreOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "Container name.") var name: String
        @Option(help: "The image: name[:tag], name@digest, or its ID (manifest or config digest, or a unique prefix).") var image: String
        @Option(name: .shortAndLong, help: ArgumentHelp(
            "A mount: /path (anonymous volume), VOLUME:/path (named volume) or /host/path:/path (bind mount), each with an optional :ro.",
            valueName: "mount"))
        var volume: [String] = []
        @Option(help: ArgumentHelp("A mount, as Docker's --mount: type=volume|bind|tmpfs,source=…,target=…[,readonly].", valueName: "spec"))
        var mount: [String] = []

        func run() throws {
            let mounts = try volume.map { try MountSpec(parsing: $0) } + mount.map { try MountSpec(mountOption: $0) }
            try ObjectName.validate(name, kind: "container") // a bad name is a usage error before any lookup
            let s = try store.open()
            let c = try s.createContainer(name, image: s.findImage(image).reference, mounts: mounts)
            if output.json { try Terminal.printJSON(c) } else { print(c.name) }
        }
    }

    struct Commit: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Store a container's read-write layer (a tar), replacing its previous diff.")
        @OptionGroup var store: StoreOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "Container name.") var name: String
        @Argument(help: "The diff as a tar file.") var diff: String

        func run() throws {
            let s = try store.open()
            _ = try s.container(name)
            let result = try s.withLease("container commit \(name)") { _ -> IngestResult in
                let r = try TarValidation.ingest(file: diff, into: s, mediaType: MediaType.ociLayer)
                try s.setContainerDiff(name, r.digest)
                return r
            }
            if output.json { try Terminal.printJSON(result) } else { print(result.digest) }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List containers.")
        @OptionGroup var store: StoreOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            let all = try store.open().containers()
            if output.json { try Terminal.printJSON(all); return }
            var rows = [["NAME", "IMAGE", "DIFF", "VOLUMES"]]
            for c in all {
                rows.append([c.name, c.image, c.diff.map { "sha256:" + $0.short } ?? "-",
                             c.mounts.map(Self.describe).joined(separator: ",")])
            }
            print(Terminal.table(rows))
        }

        static func describe(_ m: ContainerInfo.Mount) -> String {
            let from = switch m.kind {
            case .volume: m.anonymous ? String(m.volume.prefix(12)) : m.volume
            case .bind: m.source ?? "?"
            case .tmpfs: "tmpfs"
            }
            return "\(from):\(m.path)" + (m.readOnly ? ":ro" : "")
        }
    }

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a container as JSON: its image, diff and mounts (as `docker inspect` lists them).")
        @OptionGroup var store: StoreOptions
        @Argument(help: "Container name.") var name: String

        /// `docker inspect`'s names and shapes, so scripts written for it read this too.
        struct Report: Encodable {
            var Name: String
            var Image: String
            var Manifest: Digest
            var Diff: Digest?
            var Created: String
            var Mounts: [MountReport]
        }

        struct MountReport: Encodable {
            var `Type`: String
            var Name: String?
            var Source: String
            var Destination: String
            var RW: Bool
        }

        func run() throws {
            let c = try store.open().container(name)
            let created = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: TimeInterval(c.createdAt)))
            let mounts = c.mounts.map { m in
                MountReport(Type: m.kind.rawValue, Name: m.kind == .volume ? m.volume : nil,
                            Source: m.source ?? "", Destination: m.path, RW: !m.readOnly)
            }
            try Terminal.printJSON([Report(Name: c.name, Image: c.image, Manifest: c.manifest, Diff: c.diff, Created: created, Mounts: mounts)])
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove containers and their anonymous volumes (never named ones).")
        @OptionGroup var store: StoreOptions
        @Argument(help: "Container names.") var names: [String]
        @Flag(help: "Keep the anonymous volumes too.") var keepVolumes = false

        func validate() throws { if names.isEmpty { throw ValidationError("give at least one container name") } }

        func run() throws {
            let s = try store.open()
            for name in names {
                let removed = try s.removeContainer(name, keepVolumes: keepVolumes)
                print("removed \(name)" + (removed.isEmpty ? "" : " and \(removed.count) anonymous volume(s)"))
            }
        }
    }
}

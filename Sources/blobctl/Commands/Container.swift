import ArgumentParser
import BlobStore
import Foundation

struct Container: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Containers: an image, a read-write layer (diff) and volume mounts.",
        subcommands: [Create.self, Commit.self, List.self, Remove.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a container on an image.")
        @OptionGroup var store: StoreOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "Container name.") var name: String
        @Option(help: "The image, as name[:tag] or name@digest.") var image: String
        @Option(name: .shortAndLong, help: ArgumentHelp("A mount: /path (anonymous volume) or VOLUME:/path (named volume).", valueName: "mount"))
        var volume: [String] = []

        func run() throws {
            let mounts = try volume.map { try MountSpec(parsing: $0) }
            let c = try store.open().createContainer(name, image: ImageReference(parsing: image), mounts: mounts)
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
                             c.mounts.map { "\($0.anonymous ? String($0.volume.prefix(12)) : $0.volume):\($0.path)" }.joined(separator: ",")])
            }
            print(Terminal.table(rows))
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

import ArgumentParser
import BlobStore
import Foundation

struct Image: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Images: import and export OCI layouts and docker-save tarballs, list, inspect, tag, remove.",
        subcommands: [Import.self, Export.self, List.self, Inspect.self, Tag.self, Remove.self])

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Import images from an OCI image layout directory or a `docker save` / OCI archive tar.",
            discussion: """
                Images the source names in full (a docker-save RepoTag, an OCI \
                `io.containerd.image.name` annotation) keep that name. Those it names only by \
                tag (an OCI layout's `org.opencontainers.image.ref.name` of `v1`) get the \
                repository --name, by default the directory's or file's name: importing \
                ./l1 with tag v1 gives l1:v1. Each imported image is printed with its name.
                """)
        @OptionGroup var store: StoreOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "The layout directory or tar file.") var path: String
        @Option(help: "Repository name for images the source names only by tag (default: from the file name).")
        var name: String?

        func run() throws {
            let s = try store.openOrCreate()
            let fallback = name ?? Import.defaultName(for: path)
            let imported = try ImageImporter(store: s, defaultName: fallback).importImages(from: path)
            if output.json { try Terminal.printJSON(imported); return }
            for i in imported { print("imported \(i.reference)  \(i.manifest)  (\(i.blobs) blobs)") }
            if name == nil, imported.contains(where: { $0.reference.hasPrefix(fallback + ":") }) {
                Terminal.note("named \(fallback) after \(URL(fileURLWithPath: path).lastPathComponent); choose the name with --name")
            }
        }

        /// `alpine-3.19.tar` -> `alpine-3.19`, made a valid repository name.
        static func defaultName(for path: String) -> String {
            var base = URL(fileURLWithPath: path).lastPathComponent.lowercased()
            for ext in [".tar", ".oci"] where base.hasSuffix(ext) { base.removeLast(ext.count) }
            let cleaned = String(base.map { $0.isLetter || $0.isNumber ? $0 : "-" }).trimmingCharacters(in: CharacterSet(charactersIn: "-"))
            return ImageReference.isValidName(cleaned) ? cleaned : "imported"
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Export an image with its manifests and blobs unchanged.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The image: name[:tag], name@digest, or its ID (manifest or config digest, or a unique prefix).") var reference: String
        @Option(help: "oci: an OCI image layout directory; docker: a `docker load`-able tar.") var format: ExportFormat = .oci
        @Option(name: .shortAndLong, help: "Where to write it.") var output: String

        func run() throws {
            let s = try store.open()
            let ref = try s.findImage(reference).reference
            let exporter = ImageExporter(store: s)
            switch format {
            case .oci: try exporter.exportLayout(ref, to: output)
            case .docker: try exporter.exportDockerArchive(ref, to: output)
            }
        }
    }

    enum ExportFormat: String, ExpressibleByArgument { case oci, docker }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List tagged images.")
        @OptionGroup var store: StoreOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            let s = try store.open()
            let images = try s.images()
            if output.json { try Terminal.printJSON(images); return }
            var rows = [["REFERENCE", "MANIFEST", "SIZE"]]
            for i in images {
                let size = try s.imageBlobs(of: i.manifest).reduce(UInt64(0)) { $0 + ((try? s.stat($1).size) ?? 0) }
                rows.append([i.reference, i.manifest.description.prefix(19) + "…", Terminal.bytes(size)])
            }
            print(Terminal.table(rows))
        }
    }

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an image's manifest, config and layers.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The image: name[:tag], name@digest, or its ID (manifest or config digest, or a unique prefix).") var reference: String

        struct Report: Encodable {
            var reference: String
            var manifest: Digest
            var mediaType: String
            var config: Descriptor?
            var layers: [Descriptor]
            var manifests: [Descriptor]
        }

        func run() throws {
            let s = try store.open()
            let info = try s.image(s.findImage(reference).reference)
            let m = try s.manifest(info.manifest)
            try Terminal.printJSON(Report(reference: reference, manifest: info.manifest, mediaType: m.mediaType,
                                          config: m.config, layers: m.layers, manifests: m.manifests))
        }
    }

    struct Tag: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Give an image another name:tag.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "Existing image: name[:tag], name@digest, or its ID.") var source: String
        @Argument(help: "New name[:tag].") var target: String

        func run() throws {
            let s = try store.open()
            try s.tagImage(s.findImage(source).reference, as: ImageReference(parsing: target))
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rm", abstract: "Remove image tags. Layers go at the next gc unless another image or a container uses them.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "Images: name[:tag], or an ID (manifest or config digest, or a unique prefix) that one tag points at.") var references: [String]

        func validate() throws { if references.isEmpty { throw ValidationError("give at least one image") } }

        func run() throws {
            let s = try store.open()
            for r in references {
                let match = try s.findImage(r)
                // By name: that tag. By ID: its one tag; several would be a guess.
                guard match.reference.tag != nil else {
                    throw BlobStoreError(.invalidArgument, "\(r) is tagged as " + match.tags.map(\.reference).joined(separator: ", ") + ": remove those by name")
                }
                try s.removeImage(match.reference)
                print("untagged \(match.reference)")
            }
        }
    }
}

import ArgumentParser
import BlobStore
import Foundation

struct Image: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Images: import and export OCI layouts and docker-save tarballs, list, inspect, tag, remove.",
        subcommands: [Import.self, Export.self, List.self, Inspect.self, Tag.self, Remove.self])

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Import images from an OCI image layout directory or a `docker save` / OCI archive tar.")
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
            for i in imported { print("\(i.reference)  \(i.manifest)  (\(i.blobs) blobs)") }
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
        @Argument(help: "The image, as name[:tag].") var reference: String
        @Option(help: "oci: an OCI image layout directory; docker: a `docker load`-able tar.") var format: ExportFormat = .oci
        @Option(name: .shortAndLong, help: "Where to write it.") var output: String

        func run() throws {
            let s = try store.open()
            let ref = try ImageReference(parsing: reference)
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
                let size = try s.closure(of: i.manifest).reduce(UInt64(0)) { $0 + ((try? s.stat($1).size) ?? 0) }
                rows.append([i.reference, i.manifest.description.prefix(19) + "…", Terminal.bytes(size)])
            }
            print(Terminal.table(rows))
        }
    }

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an image's manifest, config and layers.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The image, as name[:tag] or name@digest.") var reference: String

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
            let info = try s.image(ImageReference(parsing: reference))
            let m = try s.manifest(info.manifest)
            try Terminal.printJSON(Report(reference: reference, manifest: info.manifest, mediaType: m.mediaType,
                                          config: m.config, layers: m.layers, manifests: m.manifests))
        }
    }

    struct Tag: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Give an image another name:tag.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "Existing image.") var source: String
        @Argument(help: "New name[:tag].") var target: String

        func run() throws {
            try store.open().tagImage(ImageReference(parsing: source), as: ImageReference(parsing: target))
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rm", abstract: "Remove image tags. Layers go at the next gc unless another image or a container uses them.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "Images, as name[:tag].") var references: [String]

        func validate() throws { if references.isEmpty { throw ValidationError("give at least one image") } }

        func run() throws {
            let s = try store.open()
            for r in references {
                try s.removeImage(ImageReference(parsing: r))
                print("untagged \(r)")
            }
        }
    }
}

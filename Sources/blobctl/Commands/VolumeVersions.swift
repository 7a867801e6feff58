import ArgumentParser
import BlobStore
import Foundation

/// A volume's versions: every import and every engine unmount that changed something adds
/// one, at the cost of the chunks that changed.
extension Volume {
    struct History: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a volume's versions, oldest first.")
        @OptionGroup var store: StoreOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "Volume name.") var name: String

        func run() throws {
            let versions = try store.open().volumeVersions(name)
            if output.json { try Terminal.printJSON(versions); return }
            if versions.isEmpty { print("volume \(name) has no version yet"); return }
            var rows = [["VERSION", "CREATED", "SIZE", "SNAPSHOT", ""]]
            let format = ISO8601DateFormatter()
            for v in versions {
                rows.append(["\(v.number)", format.string(from: Date(timeIntervalSince1970: TimeInterval(v.createdAt))),
                             Terminal.bytes(v.size), "sha256:" + v.digest.short, v.current ? "current" : ""])
            }
            print(Terminal.table(rows))
        }
    }

    struct Restore: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make an earlier version a volume's content again.",
            discussion: "The restored content becomes the newest version; the one it replaces stays in the history. Refused while an engine has the volume mounted.")
        @OptionGroup var store: StoreOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "Volume name.") var name: String
        @Option(help: "The version to restore (see `volume history`).") var version: Int

        func run() throws {
            let number = try store.open().restoreVolume(name, version: version)
            if output.json { try Terminal.printJSON(["volume": name, "restored": "\(version)", "version": "\(number)"]); return }
            print("\(name): version \(version) restored as version \(number)")
        }
    }

    struct Forget: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Drop a volume's oldest versions.",
            discussion: "Keeps the current version and the newest --keep earlier ones; `gc` then frees the bytes only the dropped versions used.")
        @OptionGroup var store: StoreOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "Volume name.") var name: String
        @Option(help: "Earlier versions to keep.") var keep: Int

        func run() throws {
            let dropped = try store.open().forgetVolumeVersions(name, keep: keep)
            if output.json { try Terminal.printJSON(["volume": name, "dropped": "\(dropped)"]); return }
            print("\(name): dropped \(dropped) version(s)")
        }
    }
}

import ArgumentParser
import BlobStore
import Foundation

struct Stat: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a blob's size, media type, chunks and references.")

    @OptionGroup var store: StoreOptions
    @OptionGroup var output: OutputOptions

    @Argument(help: "The blob's digest.")
    var digest: String

    func run() throws {
        let info = try store.open().stat(try parseDigest(digest))
        if output.json {
            try Terminal.printJSON(info)
            return
        }
        print(Terminal.table([
            ["digest:", info.digest.description],
            ["size:", "\(info.size) (\(Terminal.bytes(info.size)))"],
            ["media type:", info.mediaType ?? "-"],
            ["chunks:", "\(info.chunkCount)"],
            ["pinned:", info.pinned ? "yes" : "no"],
            ["references:", "\(info.references)"],
            ["created:", ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: TimeInterval(info.createdAt)))],
        ]))
    }
}

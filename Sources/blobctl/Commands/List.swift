import ArgumentParser
import BlobStore
import Foundation

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List the stored blobs.")

    @OptionGroup var store: StoreOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        let blobs = try store.open().list()
        if output.json {
            try Terminal.printJSON(blobs)
            return
        }
        var rows = [["DIGEST", "SIZE", "CHUNKS", "REFS", "MEDIA TYPE"]]
        for b in blobs {
            rows.append([b.digest.description, Terminal.bytes(b.size), "\(b.chunkCount)",
                         "\(b.references)\(b.pinned ? "+pin" : "")", b.mediaType ?? "-"])
        }
        print(Terminal.table(rows))
    }
}

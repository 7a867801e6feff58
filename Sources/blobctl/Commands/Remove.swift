import ArgumentParser
import BlobStore

struct Remove: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm",
        abstract: "Remove blobs. Their chunks are freed by the next `blobctl gc`.",
        discussion: "A blob that images or containers still refer to loses only its pin and stays.")

    @OptionGroup var store: StoreOptions
    @OptionGroup var output: OutputOptions

    @Argument(help: "Digests of the blobs to remove.")
    var digests: [String]

    func validate() throws {
        if digests.isEmpty { throw ValidationError("give at least one digest") }
    }

    func run() throws {
        let parsed = try digests.map(parseDigest)
        let s = try store.open()
        var results: [RemoveResult] = []
        for d in parsed {
            let r = try s.remove(d)
            results.append(r)
            if !output.json {
                print(r.removed ? "removed \(d)" : "unpinned \(d) (still referenced by \(r.references) objects)")
            }
        }
        if output.json { try Terminal.printJSON(results) }
    }
}

import ArgumentParser
import BlobStore
import GC

struct GarbageCollect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Free what nothing refers to any more.",
        discussion: "Safe while other processes put and read: data an ingest in progress relies on is kept.")

    @OptionGroup var store: StoreOptions
    @OptionGroup var output: OutputOptions

    @Flag(help: "Report what would be freed, change nothing.")
    var dryRun = false

    func run() throws {
        let report = try GarbageCollector(store: store.open()).collect(dryRun: dryRun)
        if output.json {
            try Terminal.printJSON(report)
            return
        }
        let verb = dryRun ? "would free" : "freed"
        print("\(verb) \(report.blobsFreed) blobs, \(report.chunksFreed) chunks (\(Terminal.bytes(report.bytesFreed)) in packs); " +
              "\(dryRun ? "would remove" : "removed") \(report.packsRemoved) pack files (\(Terminal.bytes(report.packBytesRemoved))); " +
              "\(dryRun ? "would compact" : "compacted") \(report.packsCompacted) packs (\(Terminal.bytes(report.compactionBytesReclaimed)) reclaimed)" +
              (report.deferred > 0 ? "; \(report.deferred) entries kept for ingests in progress" : ""))
    }
}

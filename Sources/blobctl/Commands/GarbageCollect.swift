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

    @Option(help: "Compact packs with at least this share of dead bytes (0 to 1).")
    var compactThreshold: Double = 0.5

    func validate() throws {
        guard (0...1).contains(compactThreshold) else { throw ValidationError("--compact-threshold must be between 0 and 1") }
    }

    func run() throws {
        let collector = GarbageCollector(store: try store.open(), compactionThreshold: compactThreshold)
        let report = try collector.collect(dryRun: dryRun) {
            Terminal.error("waiting for another gc or fsck on this store to finish")
        }
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

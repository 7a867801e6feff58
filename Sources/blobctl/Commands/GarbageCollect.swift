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
        print(GarbageCollect.byKind(report))
    }

    /// `images 2 blobs (3.1 MiB), containers 1 blob (180 KiB), volumes 0, uploads 0`: the
    /// blobs freed by what let go of them, sizes before dedup and compression.
    static func byKind(_ report: GCReport) -> String {
        let kinds = ["images", "containers", "volumes", "uploads"] + (report.freedByKind["other"] != nil ? ["other"] : [])
        return "  by kind: " + kinds.map { kind in
            guard let k = report.freedByKind[kind], k.blobs > 0 else { return "\(kind) 0" }
            return "\(kind) \(k.blobs) blob\(k.blobs == 1 ? "" : "s") (\(Terminal.bytes(k.bytes)))"
        }.joined(separator: ", ")
    }
}

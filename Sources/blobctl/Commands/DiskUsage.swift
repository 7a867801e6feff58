import ArgumentParser
import BlobStore

struct DiskUsage: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "df", abstract: "Show logical and stored bytes, dedup and compression.")

    @OptionGroup var store: StoreOptions
    @OptionGroup var output: OutputOptions

    struct Report: Encodable {
        var blobs: UInt64
        var logicalBytes: UInt64
        var uniqueBytes: UInt64
        var storedBytes: UInt64
        var chunks: UInt64
        var packs: Int
        var packBytes: UInt64
        var dedupRatio: Double
        var compressionRatio: Double
        var totalRatio: Double
        /// Per image, container and volume: what removing it frees, and what it shares.
        var objects: [ObjectUsage]
    }

    func run() throws {
        let s = try store.open()
        let t = try s.totals()
        let packs = try s.packUsage()
        let report = Report(
            blobs: t.blobs, logicalBytes: t.logicalBytes, uniqueBytes: t.uniqueBytes, storedBytes: t.storedBytes,
            chunks: t.chunks, packs: packs.count, packBytes: packs.bytes,
            dedupRatio: Terminal.ratio(t.logicalBytes, t.uniqueBytes),
            compressionRatio: Terminal.ratio(t.uniqueBytes, t.storedBytes),
            totalRatio: Terminal.ratio(t.logicalBytes, packs.bytes),
            objects: try s.objectUsage())
        if output.json {
            try Terminal.printJSON(report)
            return
        }
        print(Terminal.table([
            ["blobs:", "\(t.blobs)"],
            ["logical:", Terminal.bytes(t.logicalBytes) + "   (sum of blob sizes)"],
            ["unique:", Terminal.bytes(t.uniqueBytes) + "   (after dedup, dedup ratio " + String(format: "%.2fx)", report.dedupRatio)],
            ["stored:", Terminal.bytes(t.storedBytes) + "   (after compression, ratio " + String(format: "%.2fx)", report.compressionRatio)],
            ["chunks:", "\(t.chunks)"],
            ["packs:", "\(packs.count) files, \(Terminal.bytes(packs.bytes)) on disk" + String(format: " (%.2fx smaller than logical)", report.totalRatio)],
        ]))
        if !report.objects.isEmpty {
            print("")
            var rows = [["TYPE", "NAME", "SIZE", "EXCLUSIVE", "SHARED"]]
            for o in report.objects {
                rows.append([o.kind.rawValue, o.name, Terminal.bytes(o.logicalBytes), Terminal.bytes(o.exclusiveBytes), Terminal.bytes(o.sharedBytes)])
            }
            print(Terminal.table(rows))
        }
    }
}

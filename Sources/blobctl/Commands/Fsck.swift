import ArgumentParser
import BlobStore
import GC

struct Fsck: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check the store: every count against a full mark from the roots, every chunk's SHA-256, every pack record.",
        discussion: "Exits 0 when the store is healthy, 4 when it found damage or wrong counts.")

    @OptionGroup var store: StoreOptions
    @OptionGroup var output: OutputOptions

    @Flag(help: "Rebuild the counts, the garbage queue and lost chunk records from the packs.")
    var repair = false

    @Flag(help: "Skip reading and hashing every chunk.")
    var quick = false

    @Flag(help: ArgumentHelp("Rebuild the index from the packs and the index journal (after losing or damaging index/).",
                             discussion: "Stop every other process using the store first. The old index/ is kept aside as index.replaced-<time>."))
    var rebuildIndex = false

    func validate() throws {
        if rebuildIndex && (repair || quick) { throw ValidationError("--rebuild-index does not combine with --repair or --quick") }
    }

    func run() throws {
        if rebuildIndex {
            let rebuilt = try IndexRebuilder.rebuild(root: store.root)
            if output.json {
                try Terminal.printJSON(rebuilt)
            } else {
                if let old = rebuilt.previousIndex { print("previous index moved to \(old)") }
                print("replayed \(rebuilt.journalEntries) journal entries" +
                      (rebuilt.journalStretchesSkipped > 0 ? " (\(rebuilt.journalStretchesSkipped) damaged stretches skipped)" : ""))
                print("scanned \(rebuilt.packs) packs (\(rebuilt.packRecords) records)")
                print("rebuilt index: \(rebuilt.blobs) blobs, \(rebuilt.chunks) chunks")
                for lost in rebuilt.lostChunks.prefix(50) { print("  \(lost)") }
            }
            if !rebuilt.lostChunks.isEmpty { throw ExitCode(ExitStatus.integrity.rawValue) }
            return
        }
        let report = try StoreChecker(store: store.open()).check(repair: repair, verifyChunks: !quick) {
            Terminal.error("waiting for another gc or fsck on this store to finish")
        }
        if output.json {
            try Terminal.printJSON(report)
        } else {
            print("checked \(report.blobs) blobs, \(report.chunks) chunks, \(report.packs) packs (\(report.packRecords) records)")
            for (title, items) in [("wrong counts", report.countMismatches), ("missing", report.missing), ("corrupt", report.corrupt),
                                   ("unreferenced", report.unreferenced), ("repaired", report.repaired)] where !items.isEmpty {
                print("\(title) (\(items.count)):")
                for item in items.prefix(50) { print("  \(item)") }
                if items.count > 50 { print("  … \(items.count - 50) more") }
            }
            if report.damagedPackRecords > 0 { print("unreadable stretches in packs (torn writes, not referenced): \(report.damagedPackRecords)") }
            print("pack bytes not referenced by the index: \(Terminal.bytes(report.unreferencedPackBytes)) (reclaimed by gc)")
            print(report.isHealthy ? "store is healthy" : (repair ? "store had problems; see what was repaired" : "store has problems (try --repair)"))
        }
        if !report.isHealthy && !repair { throw ExitCode(ExitStatus.integrity.rawValue) }
    }
}

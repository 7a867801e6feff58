import ArgumentParser
import BlobStore
import Foundation
import GC

struct Settle: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rewrite cold packs at the store's strong zstd level (the second tier).",
        discussion: """
            Ingest writes chunks at the fast level (`init --level`); settling rewrites the packs \
            holding chunks not settled yet at the settled level (`init --settled-level`, default \
            \(StoreConfig.defaultSettledLevel)), one pack at a time, with the crash rules of compaction: \
            safe while other processes put, read and collect, and at any kill. Runs at the \
            kernel's idle priority (SCHED_IDLE: only on CPU nothing else wants) unless --full-speed.
            """)

    @OptionGroup var store: StoreOptions
    @OptionGroup var output: OutputOptions

    @Option(help: "zstd level to rewrite at (default: the store's settled level).")
    var level: Int?

    @Option(help: "Rewrite a pack once at least this share of its live bytes is not settled (0 to 1).")
    var threshold = 0.1

    @Option(help: "KiB of consecutive chunks compressed together as one frame: more compresses better, costs more per single-chunk read.")
    var frameKib = Settler.defaultFrameSize >> 10

    @Option(help: "Settle at most this many packs, the most unsettled first.")
    var maxPacks: Int?

    @Flag(help: "Keep normal CPU priority (default: idle priority, so everything else comes first).")
    var fullSpeed = false

    @Flag(help: "List the packs that would be rewritten, change nothing.")
    var dryRun = false

    func validate() throws {
        if let level, !(1...19).contains(level) { throw ValidationError("--level must be 1 to 19") }
        guard (0...1).contains(threshold) else { throw ValidationError("--threshold must be between 0 and 1") }
        if let maxPacks, maxPacks < 1 { throw ValidationError("--max-packs must be at least 1") }
        guard (1...(8 << 10)).contains(frameKib) else { throw ValidationError("--frame-kib must be 1 to 8192") }
    }

    func run() throws {
        // Before any worker thread exists: they inherit it.
        if !fullSpeed { IdlePriority.enterOnCallingThread() }
        let settler = Settler(store: try store.open(), level: level, threshold: threshold, frameSize: frameKib << 10)
        var candidates = try settler.candidates()
        if let maxPacks { candidates = Array(candidates.prefix(maxPacks)) }
        let unsettled = candidates.reduce(UInt64(0)) { $0 + $1.unsettledBytes }
        if dryRun {
            if output.json {
                try Terminal.printJSON(["packs": candidates.count, "unsettledBytes": Int(unsettled)])
            } else {
                print("would settle \(candidates.count) packs (\(Terminal.bytes(unsettled)) not settled yet) at zstd level \(settler.level)")
            }
            return
        }
        let line = ProgressLine("settling", total: unsettled)
        var done: UInt64 = 0
        let report = try settler.settle(candidates, progress: { report in
            // Progress in the candidates' unsettled bytes, pack by pack.
            done = candidates.prefix(report.packsSettled + report.packsSkipped).reduce(0) { $0 + $1.unsettledBytes }
            line.update(done)
        })
        line.finish()
        if output.json {
            try Terminal.printJSON(report)
            return
        }
        let saved = report.bytesBefore > report.bytesAfter ? report.bytesBefore - report.bytesAfter : 0
        print("settled \(report.packsSettled) packs at zstd level \(settler.level): \(report.chunksMoved) chunks, " +
              "\(Terminal.bytes(report.bytesBefore)) → \(Terminal.bytes(report.bytesAfter)) (\(Terminal.bytes(saved)) saved)" +
              (report.packsSkipped > 0 ? "; \(report.packsSkipped) packs in use, left for later" : ""))
    }
}

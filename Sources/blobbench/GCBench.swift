import ArgumentParser
import BlobStore
import Foundation

/// `blobbench gc`: the garbage-collection benchmark. Fill time is printed but kept out of
/// the figures; only `removeContainer` and `GarbageCollector.collect` are timed.
struct GCBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Time removing a container and collecting its garbage, at several store sizes.")

    @Option(help: "Store sizes to measure, in fill blobs (comma-separated).")
    var blobs = "1000,10000,100000"

    @Option(help: "Containers for the remove-many case (0 skips it).")
    var containers = 10000

    @Option(name: .customLong("repeat"), help: "Remove+collect rounds per store size (the median is reported).")
    var repeats = 7

    @Option(help: "Threads filling the stores.")
    var workers = 4

    @Option(help: "Seed of the blob contents (`blobbench files` with the same seed writes the same blobs).")
    var seed: UInt64 = 1

    @Option(help: "Parent of the scratch stores (default $BENCH_TMPDIR, /work/tmp-bench or $TMPDIR).")
    var scratch: String?

    @Flag(help: "Print JSON instead of the table.")
    var json = false

    @Option(help: "Also write the JSON to this file.")
    var jsonOut: String?

    func run() throws {
        let sizes = try blobs.split(separator: ",").map { text -> Int in
            guard let n = Int(text.trimmingCharacters(in: .whitespaces)), n >= 0 else {
                throw ValidationError("--blobs takes comma-separated counts, got \(blobs)")
            }
            return n
        }
        guard repeats >= 1 else { throw ValidationError("--repeat must be at least 1") }
        let parent = scratch ?? Scratch.defaultParent()
        let started = Stopwatch()
        var report = GCBenchReport(cores: ProcessInfo.processInfo.activeProcessorCount, workers: workers, repeats: repeats,
                                   removal: [], many: nil, totalSeconds: 0)
        for n in sizes {
            report.removal.append(try RemovalBench.run(blobs: n, repeats: repeats, workers: workers, seed: seed, parent: parent))
        }
        if containers > 0 {
            report.many = try ManyRemovalBench.run(containers: containers, workers: workers, seed: seed, parent: parent)
        }
        report.totalSeconds = started.milliseconds / 1000

        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(report)
        if let jsonOut {
            guard FileManager.default.createFile(atPath: jsonOut, contents: data) else {
                throw BlobStoreError(.io, "could not write \(jsonOut)")
            }
        }
        print(json ? String(decoding: data, as: UTF8.self) : ReportTable.render(report))
    }
}

import ArgumentParser
import BlobStore
import Foundation

/// Random range reads inside one process, for the benchmark script (a process per read
/// would measure process start-up instead).
struct BenchRanges: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-ranges", abstract: "Time random range reads of blobs (for benchmarks).", shouldDisplay: false)

    @OptionGroup var store: StoreOptions

    @Argument(help: "Digests to read from.")
    var digests: [String]

    @Option(help: "Number of reads.")
    var count = 1000

    @Option(help: "Bytes per read.")
    var size = 1 << 20

    @Option(help: "MiB of decoded-chunk cache, as the registry keeps one (default 0: none, as the CLI).")
    var cacheMib = 0

    @Flag(help: "Check SHA-256 of every chunk read.")
    var verify = false

    @Flag(help: "Print JSON.")
    var json = false

    @Flag(help: "With --json, also print every read's latency in ms (so runs can be pooled into one percentile).")
    var samples = false

    func run() throws {
        let s = try store.open()
        s.chunkCache.setCapacity(cacheMib << 20)
        let blobs = try digests.map { try s.stat(try parseDigest($0)) }.filter { $0.size > 0 }
        guard !blobs.isEmpty else { throw UsageError("no non-empty blobs given") }
        var generator = SystemRandomNumberGenerator()
        var total: UInt64 = 0
        var latencies: [Double] = []
        let start = Date()
        for _ in 0..<count {
            let blob = blobs.randomElement(using: &generator)!
            let length = min(UInt64(size), blob.size)
            let offset = UInt64.random(in: 0...(blob.size - length), using: &generator)
            let t0 = Date()
            try s.read(blob.digest, range: offset..<offset + length, verify: verify) { total += UInt64($0.count) }
            latencies.append(Date().timeIntervalSince(t0))
        }
        let seconds = Date().timeIntervalSince(start)
        let inOrder = latencies.map { $0 * 1000 }
        latencies.sort()
        // Nearest rank: the smallest latency at or above the given share of the reads.
        func percentile(_ p: Double) -> Double { latencies[max(0, Int((p * Double(latencies.count)).rounded(.up)) - 1)] * 1000 }
        let p50 = percentile(0.50), p99 = percentile(0.99)
        let mbps = Double(total) / 1e6 / seconds
        if json {
            try Terminal.printJSON(Report(bytes: Double(total), seconds: seconds, mbPerSecond: mbps, p50ms: p50, p99ms: p99,
                                          maxms: latencies.last! * 1000, latenciesMs: samples ? inOrder : nil))
        } else {
            print(String(format: "%d reads, %.1f MB in %.2f s: %.1f MB/s, p50 %.2f ms, p99 %.2f ms", count, Double(total) / 1e6, seconds, mbps, p50, p99))
        }
    }

    struct Report: Encodable {
        let bytes, seconds, mbPerSecond, p50ms, p99ms, maxms: Double
        let latenciesMs: [Double]?
    }
}

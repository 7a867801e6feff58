import BlobStore
import GC

/// The first figure: in a store of `blobs` blobs, remove one container and collect
/// its garbage. GC work should follow the garbage, not the store, so this ought to be about
/// the same for 1k, 10k and 100k blobs.
enum RemovalBench {
    static func run(blobs: Int, repeats: Int, workers: Int, seed: UInt64, parent: String) throws -> RemovalFigures {
        let scratch = try Scratch(parent: parent, label: "remove-\(blobs)")
        defer { scratch.remove() }
        return try measure(in: scratch.path, blobs: blobs, repeats: repeats, workers: workers, seed: seed)
    }

    // Separate from `run` so the store is released (files closed) before its folder goes.
    private static func measure(in dir: String, blobs: Int, repeats: Int, workers: Int, seed: UInt64) throws -> RemovalFigures {
        let store = try Store.create(at: dir + "/store")
        let image = try BenchImage.importInto(store, dir: dir + "/layout", seed: seed)
        Log.progress("store of \(blobs) blobs: filling with \(workers) workers…")
        let fill = try StoreFiller.fill(store, count: blobs, seed: seed, workers: workers)
        Log.progress(String(format: "  filled in %.1f s (%.0f blobs/s, ", fill.milliseconds / 1000, fill.blobsPerSecond) + Log.bytes(fill.bytes) + ")")

        let maker = BenchContainer(store: store, image: image)
        let gc = GarbageCollector(store: store)
        // Whatever the fill left for gc (nothing, normally) is not this measurement's work.
        _ = try gc.collect()
        var runs: [RemovalRun] = []
        for r in 0..<repeats {
            let name = "probe-\(r)"
            // Each round a fresh container with its own diff and volume snapshot, so every
            // removal frees the same kind and amount of garbage.
            try maker.make(name, seed: seed &+ 0x5EED_0000 &+ UInt64(r), file: dir + "/commit.tar", volumeSnapshot: true)
            let (_, removeMs) = try Stopwatch.time { try store.removeContainer(name) }
            let (report, collectMs) = try Stopwatch.time { try gc.collect() }
            runs.append(RemovalRun(removeMs: removeMs, collectMs: collectMs, report: report))
        }
        let usage = try store.packUsage()
        let figures = RemovalFigures(blobs: blobs, fill: fill, storeBlobs: try store.totals().blobs,
                                     packs: usage.count, packBytes: usage.bytes, runs: runs)
        Log.progress(String(format: "  remove + gc: median %.2f ms (remove %.2f, collect %.2f)",
                            figures.medianTotalMs, figures.medianRemoveMs, figures.medianCollectMs))
        try store.close()
        return figures
    }
}

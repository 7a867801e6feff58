import BlobStore
import GC

/// The second figure: a store of `containers` containers, each with its own small
/// diff on one shared image; remove them all (one transaction each, as `container rm` does),
/// then one collection frees every diff. Here the garbage is large, so the collection's
/// time should grow with it — linearly, not worse.
enum ManyRemovalBench {
    static func run(containers: Int, workers: Int, seed: UInt64, parent: String) throws -> ManyRemovalFigures {
        let scratch = try Scratch(parent: parent, label: "containers-\(containers)")
        defer { scratch.remove() }
        return try measure(in: scratch.path, containers: containers, workers: workers, seed: seed)
    }

    private static func measure(in dir: String, containers: Int, workers: Int, seed: UInt64) throws -> ManyRemovalFigures {
        let store = try Store.create(at: dir + "/store")
        let image = try BenchImage.importInto(store, dir: dir + "/layout", seed: seed)
        let maker = BenchContainer(store: store, image: image)
        Log.progress("\(containers) containers: creating, each with its own diff…")
        let (_, setupMs) = try Stopwatch.time {
            try Parallel.run(count: containers, workers: workers, scratch: { w in dir + "/commit-\(w).tar" }) { i, file in
                try maker.make("c\(i)", seed: seed &+ 0xC0_0000 &+ UInt64(i), file: file, volumeSnapshot: false)
            }
        }
        Log.progress(String(format: "  created in %.1f s", setupMs / 1000))

        let (_, removeAllMs) = try Stopwatch.time {
            for i in 0..<containers { try store.removeContainer("c\(i)") }
        }
        let (report, collectMs) = try Stopwatch.time { try GarbageCollector(store: store).collect() }
        let figures = ManyRemovalFigures(containers: containers, setupMs: setupMs, removeAllMs: removeAllMs, collectMs: collectMs,
                                         blobsFreed: report.blobsFreed, chunksFreed: report.chunksFreed, bytesFreed: report.bytesFreed,
                                         packsRemoved: report.packsRemoved, packsCompacted: report.packsCompacted, blobsLeft: try store.totals().blobs)
        Log.progress(String(format: "  removed all in %.0f ms, collected in %.0f ms (%d blobs freed)", removeAllMs, collectMs, report.blobsFreed))
        try store.close()
        return figures
    }
}

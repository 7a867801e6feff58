import BlobStore
import CMalloc
import GC
import Logging
import Metrics
import ServiceLifecycle

/// Collects garbage in the background while the registry serves: no read-only mode, no
/// global lock — uploads in flight hold leases, so nothing they rely on is collected. A
/// round is skipped while another process collects or checks the store.
struct GarbageCollectionService: Service {
    let store: Store
    let interval: Double
    let logger: Logger
    let runs = Counter(label: "blobstore_gc_runs_total")
    let freed = Counter(label: "blobstore_gc_bytes_freed_total")
    let storedBytes = Gauge(label: "blobstore_stored_bytes")
    let logicalBytes = Gauge(label: "blobstore_logical_bytes")

    func run() async throws {
        guard interval > 0 else {
            try? await gracefulShutdown()
            return
        }
        try await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                // Graceful shutdown cancels the sleep: that is the end of the service, not an
                // error (a CancellationError thrown from here would fail the service group).
                do { try await Task.sleep(for: .seconds(interval)) } catch { return }
                do {
                    guard let report = try await Blocking.run({ try GarbageCollector(store: store).collectIfIdle() }) else {
                        logger.debug("garbage collection skipped: another process is collecting or checking the store")
                        continue
                    }
                    runs.increment()
                    freed.increment(by: Int64(report.bytesFreed))
                    if report.blobsFreed + report.chunksFreed + report.packsRemoved + report.packsCompacted > 0 {
                        logger.info("garbage collected", metadata: [
                            "blobs": "\(report.blobsFreed)", "chunks": "\(report.chunksFreed)", "bytes": "\(report.bytesFreed)",
                            "packs-removed": "\(report.packsRemoved)", "packs-compacted": "\(report.packsCompacted)",
                        ])
                    }
                    let totals = try await Blocking.run { try store.totals() }
                    blobstore_trim_malloc()
                    storedBytes.record(Int64(totals.storedBytes))
                    logicalBytes.record(Int64(totals.logicalBytes))
                } catch is CancellationError {
                    return
                } catch {
                    logger.error("garbage collection failed", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}

import BlobStore
import Foundation
import GC
import Logging
import Metrics
import ServiceLifecycle

/// The second tier while the registry serves: once no request has been in progress for
/// `idleSeconds`, packs of chunks pushed at the fast level are rewritten at the store's
/// settled level (`Settler`), one pack at a time, on one thread of idle priority. A request
/// arriving stops the run before its next pack; the pack under way finishes at idle
/// priority, so it takes CPU only the clients leave unused.
struct SettlingService: Service {
    let store: Store
    let idleSeconds: Double
    /// The registry's request gate: empty for `idleSeconds` means the clients are quiet.
    let requests: AdmissionGate
    let logger: Logger
    let packsSettled = Counter(label: "blobstore_settle_packs_total")
    let bytesSaved = Counter(label: "blobstore_settle_bytes_saved_total")

    func run() async throws {
        guard idleSeconds > 0 else {
            try? await gracefulShutdown()
            return
        }
        // A shutdown abandons the pack under way at once instead of waiting for it.
        let stopping = StopFlag()
        try await cancelWhenGracefulShutdown { try await withGracefulShutdownHandler {
            // The totals when a run last found nothing more to do: while they stay the same,
            // there is nothing new to settle and the chunk index is not scanned again.
            var settledUpTo: StoreTotals?
            while !Task.isCancelled && !stopping.isSet {
                do { try await Task.sleep(for: .seconds(min(idleSeconds, 5))) } catch { return }
                guard requests.isEmpty(for: idleSeconds) else { continue }
                do {
                    let before = try store.totals()
                    guard before != settledUpTo else { continue }
                    let settler = Settler(store: store, parallel: false)
                    let (requests, idleSeconds) = (self.requests, self.idleSeconds)
                    // (The settler seals this server's pack before it claims one, so what was
                    // pushed before the quiet spell is settled too.)
                    let report = try await IdlePriority.run("settler") {
                        try settler.settle(shouldContinue: { requests.isEmpty(for: idleSeconds) }, shouldStop: { stopping.isSet })
                    }
                    if report.packsSkipped == 0 && requests.isEmpty(for: idleSeconds) { settledUpTo = try store.totals() }
                    guard report.packsSettled > 0 else { continue }
                    let saved = report.bytesBefore > report.bytesAfter ? report.bytesBefore - report.bytesAfter : 0
                    packsSettled.increment(by: Int64(report.packsSettled))
                    bytesSaved.increment(by: Int64(saved))
                    logger.info("settled packs", metadata: [
                        "packs": "\(report.packsSettled)", "chunks": "\(report.chunksMoved)",
                        "bytes-before": "\(report.bytesBefore)", "bytes-after": "\(report.bytesAfter)",
                    ])
                } catch is CancellationError {
                    return
                } catch is SettlingStopped {
                    return
                } catch {
                    logger.error("settling failed", metadata: ["error": "\(error)"])
                }
            }
        } onGracefulShutdown: {
            stopping.set()
        } }
    }
}

/// A flag one thread sets and others read.
final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}

import Foundation

/// Runs `count` jobs on `workers` threads. Puts spend part of their time waiting (fsync,
/// LMDB's single writer), so a few more workers than cores keeps both cores busy.
/// Each worker gets its own index range and a scratch value it reuses (a buffer, a path),
/// so nothing is shared but the store. The first error stops the remaining jobs.
enum Parallel {
    static func run<Scratch>(count: Int, workers: Int, scratch: @Sendable (Int) -> Scratch,
                             _ job: @Sendable (Int, inout Scratch) throws -> Void) throws {
        let failure = FirstError()
        let workers = max(1, min(workers, count))
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            var s = scratch(w)
            // Interleaved, so every worker's share has the same mix of sizes.
            var i = w
            while i < count, !failure.isSet {
                do {
                    try job(i, &s)
                } catch {
                    failure.set(error)
                    return
                }
                i += workers
            }
        }
        if let error = failure.error { throw error }
    }
}

/// The first error any worker hit.
private final class FirstError: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: (any Error)?

    var isSet: Bool { lock.withLock { stored != nil } }
    var error: (any Error)? { lock.withLock { stored } }

    func set(_ e: any Error) {
        lock.withLock { if stored == nil { stored = e } }
    }
}

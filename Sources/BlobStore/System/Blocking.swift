import Foundation

/// Runs blocking store work (LMDB transactions, chunking, compression, pack I/O) off the
/// Swift concurrency pool, whose few threads must not wait on disk or burn seconds of CPU.
///
/// A fixed set of threads takes jobs in arrival order. A concurrent dispatch queue would
/// start a new thread for every job blocked on disk, up to hundreds under load; here the
/// thread count is fixed, and the queue of waiting jobs is bounded by the server's request
/// admission (each admitted request has at most two jobs queued at once). The registry, the
/// volume plugin, the CSI driver and the containerd proxy all run their store calls here.
public enum Blocking {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var configuredThreads = 16
    nonisolated(unsafe) private static var started: BlockingPool?

    /// Sets the number of threads; only before the first job (the server calls it at start).
    public static func configure(threads: Int) {
        lock.lock()
        defer { lock.unlock() }
        if started == nil { configuredThreads = max(1, threads) }
    }

    private static var pool: BlockingPool {
        lock.lock()
        defer { lock.unlock() }
        if let started { return started }
        let pool = BlockingPool(threads: configuredThreads)
        started = pool
        return pool
    }

    public static func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        let pool = self.pool
        return try await withCheckedThrowingContinuation { continuation in
            pool.submit {
                do { continuation.resume(returning: try work()) } catch { continuation.resume(throwing: error) }
            }
        }
    }
}

/// Threads that run submitted jobs first in, first out.
final class BlockingPool: @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [@Sendable () -> Void] = []
    private var head = 0

    init(threads: Int) {
        for n in 0..<threads {
            let thread = Thread { [unowned self] in self.work() }
            thread.name = "blobstore.blocking.\(n)"
            thread.start()
        }
    }

    func submit(_ job: @escaping @Sendable () -> Void) {
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    private func work() {
        while true {
            condition.lock()
            while head == jobs.count { condition.wait() }
            let job = jobs[head]
            head += 1
            // Drop the consumed prefix now and then, so the array does not grow forever.
            if head == jobs.count { jobs.removeAll(keepingCapacity: true); head = 0 }
            else if head >= 1024 { jobs.removeFirst(head); head = 0 }
            condition.unlock()
            job()
        }
    }
}

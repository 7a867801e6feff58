import Dispatch

/// Runs blocking store work (LMDB transactions, chunking, compression, pack I/O) off the
/// Swift concurrency pool, whose few threads must not wait on disk or burn seconds of CPU.
enum Blocking {
    private static let queue = DispatchQueue(label: "blobstore.registry.blocking", attributes: .concurrent)

    static func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                do { continuation.resume(returning: try work()) } catch { continuation.resume(throwing: error) }
            }
        }
    }
}

import CSIProtocol
import Dispatch
import GRPCCore

/// Runs engine work (file system and index calls that may block) off the async threads,
/// and turns its errors into gRPC statuses.
func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    do {
        return try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                do { continuation.resume(returning: try work()) } catch { continuation.resume(throwing: error) }
            }
        }
    } catch {
        throw CSIError.from(error)
    }
}

import BlobStore
import GRPCCore

/// Engine work (file system and index calls that may block) on the store's blocking pool,
/// its errors turned into gRPC statuses.
func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    do {
        return try await Blocking.run(work)
    } catch {
        throw CSIError.from(error)
    }
}

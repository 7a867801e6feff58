import CSIProtocol
import BlobStore
import GRPCCore

/// The spec's error codes, mapped from what the engine throws.
enum CSIError {
    static func invalid(_ message: String) -> RPCError { RPCError(code: .invalidArgument, message: message) }
    static func notFound(_ message: String) -> RPCError { RPCError(code: .notFound, message: message) }
    static func exists(_ message: String) -> RPCError { RPCError(code: .alreadyExists, message: message) }
    static func aborted(_ message: String) -> RPCError { RPCError(code: .aborted, message: message) }
    static func outOfRange(_ message: String) -> RPCError { RPCError(code: .outOfRange, message: message) }
    static func precondition(_ message: String) -> RPCError { RPCError(code: .failedPrecondition, message: message) }

    /// An engine error as the closest gRPC status; anything unexpected is INTERNAL.
    static func from(_ error: any Error) -> RPCError {
        if let rpc = error as? RPCError { return rpc }
        guard let e = error as? BlobStoreError else { return RPCError(code: .internalError, message: "\(error)") }
        switch e.code {
        case .notFound: return notFound(e.message)
        case .alreadyExists: return exists(e.message)
        case .invalidArgument: return precondition(e.message)
        default: return RPCError(code: .internalError, message: e.message)
        }
    }
}

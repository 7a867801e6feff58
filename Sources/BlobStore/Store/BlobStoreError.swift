#if canImport(Glibc)
import Glibc
#endif

/// The one error type of the store: a code callers can switch on, a message that names the
/// operation and the digest or path it was about, and the errno when a syscall failed.
public struct BlobStoreError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        /// The blob, chunk, store or session asked for does not exist.
        case notFound
        /// The content is not what was promised (digest or size mismatch).
        case digestMismatch
        /// Stored bytes fail their checksum or hash: the store is damaged.
        case corrupt
        /// The caller passed something malformed.
        case invalidArgument
        /// A system call failed.
        case io
        /// The store exists already, or a name is taken.
        case alreadyExists
        /// The store's format is newer than this build understands.
        case unsupportedFormat
        /// The index refused an operation (an LMDB call failed, a query was rejected).
        case index
        /// A zstd call failed.
        case compression
        /// Input passed a configured limit (a decompression bomb, say); the message names the
        /// limit and where to raise it.
        case limitExceeded
        /// A service the store depends on (the cluster's index database, its object
        /// storage) cannot be reached now; a retry later may succeed.
        case unavailable
    }

    public var code: Code
    public var message: String
    public var errno: Int32?

    public init(_ code: Code, _ message: String, errno: Int32? = nil) {
        self.code = code
        self.message = message
        self.errno = errno
    }

    /// An error for a failed syscall, with `strerror` text.
    static func io(_ operation: String, path: String? = nil, errno code: Int32 = Glibc.errno) -> BlobStoreError {
        let reason = String(cString: strerror(code))
        let target = path.map { " \($0)" } ?? ""
        let kind: Code = code == ENOENT ? .notFound : .io
        return BlobStoreError(kind, "\(operation)\(target): \(reason)", errno: code)
    }

    public var description: String { message }
}

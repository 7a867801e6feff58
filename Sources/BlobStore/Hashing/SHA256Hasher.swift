internal import CCrypto

/// Incremental SHA-256 over libcrypto's low-level context.
///
/// The context is a plain C struct, so `state` can be saved and restored: a resumable
/// ingest keeps its half-computed blob digest across processes.
public struct SHA256Hasher: Sendable {
    private var context = SHA256_CTX()

    public init() {
        SHA256_Init(&context)
    }

    public mutating func update(_ buffer: UnsafeRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        SHA256_Update(&context, base, buffer.count)
    }

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    public func finalize() -> Digest {
        var copy = context
        var out = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        return withUnsafeMutableBytes(of: &out) { raw in
            SHA256_Final(raw.baseAddress!.assumingMemoryBound(to: UInt8.self), &copy)
            return Digest(bytes: raw.baseAddress!)
        }
    }

    /// One-shot digest of a buffer.
    public static func hash(_ buffer: UnsafeRawBufferPointer) -> Digest {
        var out = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        return withUnsafeMutableBytes(of: &out) { raw in
            let dst = raw.baseAddress!.assumingMemoryBound(to: UInt8.self)
            if let base = buffer.baseAddress {
                _ = SHA256(base.assumingMemoryBound(to: UInt8.self), buffer.count, dst)
            } else {
                var empty: UInt8 = 0
                _ = SHA256(&empty, 0, dst)
            }
            return Digest(bytes: raw.baseAddress!)
        }
    }

    public static func hash(_ bytes: [UInt8]) -> Digest {
        bytes.withUnsafeBytes { hash($0) }
    }

    /// The raw context, for persisting an unfinished digest.
    public var state: [UInt8] {
        withUnsafeBytes(of: context) { Array($0) }
    }

    /// Restores a context saved with `state`; nil when the size does not match this build's.
    public init?(state: [UInt8]) {
        guard state.count == MemoryLayout<SHA256_CTX>.size else { return nil }
        withUnsafeMutableBytes(of: &context) { dst in
            state.withUnsafeBytes { dst.copyMemory(from: $0) }
        }
    }
}

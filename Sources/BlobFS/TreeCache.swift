import BlobStore
import Foundation

/// The merged trees a mount has built, one per image manifest, each built at most once.
///
/// A caller asking for a tree another thread is building waits for that build instead of
/// starting its own (the mount's background warm-up and a first `ls` used to decompress the
/// same layers twice). A build that failed for a reason that cannot change while mounted —
/// a layer past the decompression limits, a damaged or malformed layer — is remembered and
/// answered at once, so a hostile image costs its work once, not on every lookup; other
/// failures (I/O, the index) are retried on the next access.
final class TreeCache: @unchecked Sendable {
    private enum State {
        case building
        case built(MergedTree)
        case failed(BlobStoreError)
    }

    private let condition = NSCondition()
    private var states: [Digest: State] = [:]

    /// The tree of `manifest`, from the cache or from `build`.
    func tree(_ manifest: Digest, build: () throws -> MergedTree) throws -> MergedTree {
        condition.lock()
        while true {
            switch states[manifest] {
            case .built(let tree):
                condition.unlock()
                return tree
            case .failed(let error):
                condition.unlock()
                throw error
            case .building:
                condition.wait()
            case nil:
                states[manifest] = .building
                condition.unlock()
                let result = Result { try build() }
                condition.lock()
                switch result {
                case .success(let tree): states[manifest] = .built(tree)
                case .failure(let error as BlobStoreError) where TreeCache.isLasting(error): states[manifest] = .failed(error)
                case .failure: states[manifest] = nil
                }
                condition.broadcast()
                condition.unlock()
                return try result.get()
            }
        }
    }

    /// Whether building again would fail the same way: the layers and the store's limits do
    /// not change while mounted.
    static func isLasting(_ error: BlobStoreError) -> Bool {
        switch error.code {
        case .limitExceeded, .corrupt, .invalidArgument, .unsupportedFormat, .digestMismatch: return true
        default: return false
        }
    }
}

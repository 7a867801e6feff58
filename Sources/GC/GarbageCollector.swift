import BlobStore
import Foundation

/// Drains the garbage queue.
///
/// The work is proportional to the garbage: it visits queue entries, not the store. Every
/// change happens in one index transaction; a dry run does the same work in a transaction
/// it then aborts, so its report is exactly what the real run would free at that moment.
/// Packs left with no live chunk are unlinked after the commit, each under an exclusive
/// claim so no writer can adopt it meanwhile.
public struct GarbageCollector: Sendable {
    public let store: Store

    public init(store: Store) { self.store = store }

    public func collect(dryRun: Bool = false) throws -> GCReport {
        let (report, doomed) = try store.collectGarbage(dryRun: dryRun) { candidates in
            // Claim the empty packs now, inside the transaction, so none is adopted before
            // the commit. A pack still being written (locked) is skipped.
            candidates.compactMap { try? store.packs.claim(pack: $0) }
        }
        var final = report
        if !dryRun {
            for claim in doomed {
                do {
                    try store.packs.remove(pack: claim.id)
                } catch {
                    store.logger.warning("could not remove pack", metadata: ["pack": "\(claim.id)", "error": "\(error)"])
                }
            }
        }
        final.dryRun = dryRun
        return final
    }
}

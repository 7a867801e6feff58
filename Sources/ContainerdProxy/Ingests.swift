import BlobStore
import ContainerdProtocol
import Foundation
import GRPCCore
import SwiftProtobuf

/// containerd's writes in progress, by ref: each an ingest session of the store, with the
/// size and digest containerd expects. They live in this process: after a restart
/// containerd's next STAT finds none and it starts the write over.
final class Ingests: @unchecked Sendable {
    /// The session is used only by the stream holding the ref; the other fields are also
    /// read by Status and ListStatuses, so they change under `lock`.
    private final class Entry {
        let session: IngestSession
        var total: Int64 = 0
        var expected = ""
        var written: Int64 = 0
        let startedAt = Date()
        var updatedAt = Date()
        init(session: IngestSession) { self.session = session }
    }

    private let lock = NSLock()
    private var entries: [String: Entry] = [:]
    private var writing = Set<String>()

    /// Takes `ref` for one Write stream.
    func lock(_ ref: String) throws {
        lock.lock()
        defer { lock.unlock() }
        guard writing.insert(ref).inserted else { throw RPCError(code: .unavailable, message: "ref \(ref) is locked: another write is in progress") }
    }

    func unlock(_ ref: String) {
        lock.lock()
        writing.remove(ref)
        lock.unlock()
    }

    private func entry(_ ref: String) -> Entry? {
        lock.lock()
        defer { lock.unlock() }
        return entries[ref]
    }

    /// One message of a Write stream (the caller holds the ref).
    func apply(_ message: Containerd_Services_Content_V1_WriteContentRequest, ref: String, store: Store) throws -> Containerd_Services_Content_V1_WriteContentResponse {
        let entry: Entry
        if let existing = self.entry(ref) {
            entry = existing
        } else {
            entry = Entry(session: try store.beginIngest())
            lock.lock()
            entries[ref] = entry
            lock.unlock()
        }
        lock.lock()
        if message.total > 0 { entry.total = message.total }
        if !message.expected.isEmpty { entry.expected = message.expected }
        lock.unlock()
        if message.action != .stat && !message.data.isEmpty {
            guard message.offset == Int64(entry.session.size) else {
                throw RPCError(code: .failedPrecondition, message: "write of \(ref) at offset \(message.offset), but \(entry.session.size) bytes were written")
            }
            try message.data.withUnsafeBytes { try entry.session.append($0) }
            lock.lock()
            entry.written = Int64(entry.session.size)
            entry.updatedAt = Date()
            lock.unlock()
        }
        lock.lock()
        var reply = Containerd_Services_Content_V1_WriteContentResponse.with {
            $0.action = message.action
            $0.startedAt = Google_Protobuf_Timestamp(date: entry.startedAt)
            $0.updatedAt = Google_Protobuf_Timestamp(date: entry.updatedAt)
            $0.offset = entry.written
            $0.total = entry.total
        }
        let (total, expectedText) = (entry.total, entry.expected)
        lock.unlock()
        guard message.action == .commit else { return reply }
        defer { drop(ref) }
        if total > 0 && total != Int64(entry.session.size) {
            try? entry.session.abort()
            throw RPCError(code: .failedPrecondition, message: "commit of \(ref) after \(entry.session.size) bytes, expected \(total)")
        }
        var expected: Digest?
        if !expectedText.isEmpty {
            guard let parsed = Digest(parsing: expectedText) else {
                try? entry.session.abort()
                throw RPCError(code: .invalidArgument, message: "invalid expected digest \(expectedText)")
            }
            expected = parsed
        }
        // Stored unpinned and claimed under one lease, so gc cannot take it in between.
        let digest = try store.withLease("containerd write \(ref)") { _ -> Digest in
            let result: IngestResult
            do {
                result = try entry.session.commit(expected: expected, pin: false)
            } catch let error as BlobStoreError where error.code == .digestMismatch {
                throw RPCError(code: .failedPrecondition, message: error.message)
            }
            try store.claim(result.digest, by: ContentService.holder, labels: message.labels.isEmpty ? nil : message.labels)
            return result.digest
        }
        reply.digest = digest.description
        return reply
    }

    private func drop(_ ref: String) {
        lock.lock()
        entries[ref] = nil
        lock.unlock()
    }

    func status(_ ref: String) -> Containerd_Services_Content_V1_Status? {
        lock.lock()
        defer { lock.unlock() }
        return entries[ref].map { Self.describe(ref, $0) }
    }

    func all() -> [Containerd_Services_Content_V1_Status] {
        lock.lock()
        defer { lock.unlock() }
        return entries.sorted { $0.key < $1.key }.map { Self.describe($0.key, $0.value) }
    }

    /// Drops an ingest and what it wrote; false when there is none.
    func abort(_ ref: String) throws -> Bool {
        lock.lock()
        let entry = entries.removeValue(forKey: ref)
        lock.unlock()
        guard let entry else { return false }
        try entry.session.abort()
        return true
    }

    /// Under `lock`.
    private static func describe(_ ref: String, _ entry: Entry) -> Containerd_Services_Content_V1_Status {
        .with {
            $0.ref = ref
            $0.offset = entry.written
            $0.total = entry.total
            $0.expected = entry.expected
            $0.startedAt = Google_Protobuf_Timestamp(date: entry.startedAt)
            $0.updatedAt = Google_Protobuf_Timestamp(date: entry.updatedAt)
        }
    }
}

import BlobStore
import ContainerdProtocol
import Foundation
import GRPCCore
import Logging
import SwiftProtobuf

/// containerd's content store (`containerd.services.content.v1.Content`), served by the
/// store for containerd's proxy plugin.
///
/// containerd sees only its own blobs: each is held by a claim of holder "containerd"
/// (`Store.claim`). List shows the claims; Delete drops the claim, never a blob the
/// registry, images or volumes also hold (containerd's GC deletes whatever it lists and
/// does not know); Write commits a blob and claims it. A blob pushed to `blobctl serve` and
/// then written by containerd is stored once. containerd keeps namespaces and labels in
/// its own database: no namespace reaches this service, and refs carry it as a prefix.
struct ContentService: Containerd_Services_Content_V1_Content.SimpleServiceProtocol {
    static let holder = "containerd"
    let store: Store
    let ingests: Ingests
    let logger: Logger

    func info(request: Containerd_Services_Content_V1_InfoRequest, context: ServerContext) async throws -> Containerd_Services_Content_V1_InfoResponse {
        let digest = try Self.digest(request.digest)
        // Two index lookups, called before every 32 KiB read: answered in place, not on the
        // blocking pool (a thread hop would cost more than the lookups).
        let info = try await storeErrorsMapped { () -> Containerd_Services_Content_V1_Info in
            guard let claim = try store.claim(of: digest, by: Self.holder) else { throw RPCError(code: .notFound, message: "content \(digest) not found") }
            return Self.describe(claim, size: try store.stat(digest).size)
        }
        return .with { $0.info = info }
    }

    func update(request: Containerd_Services_Content_V1_UpdateRequest, context: ServerContext) async throws -> Containerd_Services_Content_V1_UpdateResponse {
        let digest = try Self.digest(request.info.digest)
        let store = self.store
        let paths = request.updateMask.paths
        let wanted = request.info.labels
        let info = try await offload { () -> Containerd_Services_Content_V1_Info in
            guard let claim = try store.claim(of: digest, by: Self.holder) else { throw RPCError(code: .notFound, message: "content \(digest) not found") }
            var labels = claim.labels
            if paths.isEmpty || paths.contains("labels") {
                labels = wanted
            } else {
                for path in paths where path.hasPrefix("labels.") {
                    let key = String(path.dropFirst("labels.".count))
                    labels[key] = wanted[key]
                }
            }
            let updated = try store.relabelClaim(digest, by: Self.holder, labels: labels)
            return Self.describe(updated, size: try store.stat(digest).size)
        }
        return .with { $0.info = info }
    }

    /// Every blob containerd claimed that the filters (`digest`, `size`, `labels.KEY`) pass.
    func list(request: Containerd_Services_Content_V1_ListContentRequest,
              response: RPCWriter<Containerd_Services_Content_V1_ListContentResponse>, context: ServerContext) async throws {
        let store = self.store
        let filters: Filters
        do { filters = try Filters(request.filters) } catch { throw RPCError(code: .invalidArgument, message: "\(error)") }
        let infos = try await offload { () -> [Containerd_Services_Content_V1_Info] in
            try store.claims(by: Self.holder).compactMap { claim in
                guard let size = try? store.stat(claim.digest).size else { return nil }
                let info = Self.describe(claim, size: size)
                return filters.matches { Self.field($0, of: info) } ? info : nil
            }
        }
        for start in stride(from: 0, to: infos.count, by: 100) {
            try await response.write(.with { $0.info = Array(infos[start..<min(infos.count, start + 100)]) })
        }
    }

    func delete(request: Containerd_Services_Content_V1_DeleteContentRequest, context: ServerContext) async throws -> Google_Protobuf_Empty {
        let digest = try Self.digest(request.digest)
        let store = self.store
        let dropped = try await offload { try store.unclaim(digest, by: Self.holder) }
        guard dropped else { throw RPCError(code: .notFound, message: "content \(digest) not found") }
        return .init()
    }

    /// Bytes from `offset`, `size` of them (0: to the end), in pieces of about 1 MiB.
    func read(request: Containerd_Services_Content_V1_ReadContentRequest,
              response: RPCWriter<Containerd_Services_Content_V1_ReadContentResponse>, context: ServerContext) async throws {
        let digest = try Self.digest(request.digest)
        guard request.offset >= 0, request.size >= 0 else { throw RPCError(code: .invalidArgument, message: "offset and size may not be negative") }
        let store = self.store
        let (offset, size) = (UInt64(request.offset), UInt64(request.size))
        // containerd reads 32 KiB per call: the lookups and the first MiB are one job.
        let (stream, first) = try await offload { () -> (BlobStream?, Data?) in
            guard try store.claim(of: digest, by: Self.holder) != nil else { throw RPCError(code: .notFound, message: "content \(digest) not found") }
            let total = try store.stat(digest).size
            guard offset <= total else { throw RPCError(code: .outOfRange, message: "offset \(offset) is past the end (\(total) bytes)") }
            let end = size == 0 ? total : min(total, offset + size)
            guard offset < end else { return (nil, nil) }
            // One stream over the range: its chunk locations are looked up once.
            let stream = try BlobStream(store: store, digest: digest, range: offset..<end, batchBytes: 1 << 20)
            var out = Data()
            return try stream.next { out.append(contentsOf: $0) } ? (stream, out) : (nil, nil)
        }
        guard let stream, var piece = first else { return }
        var at = Int64(offset)
        while true {
            let (position, bytes) = (at, piece)
            try await response.write(.with { $0.offset = position; $0.data = bytes })
            at += Int64(piece.count)
            guard let next = try await offload({ () -> Data? in
                var out = Data()
                return try stream.next { out.append(contentsOf: $0) } ? out : nil
            }) else { return }
            piece = next
        }
    }

    func status(request: Containerd_Services_Content_V1_StatusRequest, context: ServerContext) async throws -> Containerd_Services_Content_V1_StatusResponse {
        guard let status = ingests.status(request.ref) else { throw RPCError(code: .notFound, message: "no ingest \(request.ref)") }
        return .with { $0.status = status }
    }

    func listStatuses(request: Containerd_Services_Content_V1_ListStatusesRequest, context: ServerContext) async throws -> Containerd_Services_Content_V1_ListStatusesResponse {
        .with { $0.statuses = ingests.all() }
    }

    func abort(request: Containerd_Services_Content_V1_AbortRequest, context: ServerContext) async throws -> Google_Protobuf_Empty {
        guard try await offload({ [ingests] in try ingests.abort(request.ref) }) else {
            throw RPCError(code: .notFound, message: "no ingest \(request.ref)")
        }
        return .init()
    }

    /// One ingest per ref: STAT reports where it is, WRITE appends at that offset, COMMIT
    /// checks size and digest, stores the blob and claims it. A second stream on a ref
    /// being written is UNAVAILABLE, which containerd reads as "locked" and retries.
    func write(request: RPCAsyncSequence<Containerd_Services_Content_V1_WriteContentRequest, any Error>,
               response: RPCWriter<Containerd_Services_Content_V1_WriteContentResponse>, context: ServerContext) async throws {
        var ref: String?
        defer { if let ref { ingests.unlock(ref) } }
        do {
            try await writeMessages(request, response: response, ref: &ref)
        } catch {
            logger.debug("write of \(ref ?? "(no ref)") ended: \(error)")
            throw error
        }
    }

    private func writeMessages(_ request: RPCAsyncSequence<Containerd_Services_Content_V1_WriteContentRequest, any Error>,
                               response: RPCWriter<Containerd_Services_Content_V1_WriteContentResponse>, ref: inout String?) async throws {
        for try await message in request {
            if ref == nil {
                guard !message.ref.isEmpty else { throw RPCError(code: .invalidArgument, message: "the first write message must name a ref") }
                try ingests.lock(message.ref)
                ref = message.ref
            }
            let name = ref!
            let (ingests, store) = (self.ingests, self.store)
            let reply = try await offload { try ingests.apply(message, ref: name, store: store) }
            try await response.write(reply)
            if message.action == .commit { return }
        }
    }

    static func field(_ path: [String], of info: Containerd_Services_Content_V1_Info) -> String? {
        switch path.first {
        case "digest": return path.count == 1 ? info.digest : nil
        case "size": return path.count == 1 ? String(info.size) : nil
        case "labels": return path.count == 2 ? info.labels[path[1]] : nil
        default: return nil
        }
    }

    static func digest(_ text: String) throws -> Digest {
        guard let digest = Digest(parsing: text) else { throw RPCError(code: .invalidArgument, message: "invalid digest \"\(text)\"") }
        return digest
    }

    static func describe(_ claim: BlobClaim, size: UInt64) -> Containerd_Services_Content_V1_Info {
        .with {
            $0.digest = claim.digest.description
            $0.size = Int64(size)
            $0.createdAt = Google_Protobuf_Timestamp(seconds: Int64(claim.createdAt), nanos: 0)
            $0.updatedAt = Google_Protobuf_Timestamp(seconds: Int64(claim.updatedAt), nanos: 0)
            $0.labels = claim.labels
        }
    }
}

/// Store work on the store's blocking pool; store errors become gRPC statuses.
func offload<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await storeErrorsMapped { try await Blocking.run(work) }
}

/// Store errors as gRPC statuses.
func storeErrorsMapped<T>(_ work: () async throws -> T) async throws -> T {
    do {
        return try await work()
    } catch let error as BlobStoreError {
        switch error.code {
        case .notFound: throw RPCError(code: .notFound, message: error.message)
        case .digestMismatch: throw RPCError(code: .failedPrecondition, message: error.message)
        case .invalidArgument: throw RPCError(code: .invalidArgument, message: error.message)
        default: throw RPCError(code: .internalError, message: error.message)
        }
    }
}

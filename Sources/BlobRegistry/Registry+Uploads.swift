import BlobStore
import Foundation
import HTTPTypes
import Hummingbird

/// Blob uploads: monolithic (`POST ?digest=`), chunked (`POST`, `PATCH`…, `PUT ?digest=`),
/// resumable (`GET` the status), cancellable (`DELETE`), and cross-repository mounts
/// (`POST ?mount=&from=`). An upload is a resumable ingest named `upload/<uuid>` whose
/// state is checkpointed in the index after every request, so it survives a restart, and
/// whose lease keeps the finished blob alive until a manifest refers to it.
extension Registry {
    static func reference(_ id: String) -> String { "upload/" + id }

    func uploadHeaders(name: String, id: String, offset: UInt64) -> HTTPFields {
        [.location: "/v2/\(name)/blobs/uploads/\(id)", .range: "0-\(offset == 0 ? 0 : offset - 1)",
         .dockerUploadUUID: id, .contentLength: "0"]
    }

    func startUpload(_ request: Request, name: String) async throws -> Response {
        let store = self.store
        if let mount = query(request, "mount") {
            let digest = try parseDigest(mount)
            let from = query(request, "from")
            // A mount is a new reference to a blob the store already has: no bytes move.
            let mounted = try await blocking { () -> Bool in
                let source = try from.flatMap { try store.repositoryBlob($0, digest) }
                let known = try from == nil && store.contains(digest)
                guard source != nil || known else { return false }
                try store.hold(digest, seconds: self.configuration.uploadLeaseSeconds)
                try store.linkBlob(name, digest)
                return true
            }
            if mounted {
                return Response(status: .created, headers: [.location: "/v2/\(name)/blobs/\(digest)", .dockerContentDigest: digest.description, .contentLength: "0"])
            }
            // Not mountable: fall through to an ordinary upload, as the spec says.
        }
        let digestText = query(request, "digest")
        let digest = try digestText.map { try parseDigest($0) }
        try checkSize(request, after: 0)
        // Each open session keeps an index row and holds its bytes until it ends or expires.
        let cap = configuration.maxUploadSessions
        let id = UUID().uuidString.lowercased()
        let lease = configuration.uploadLeaseSeconds
        let session: IngestSession
        do {
            session = try await Blocking.run {
                try store.beginIngest(reference: Registry.reference(id), leaseDuration: lease, openLimit: (Registry.reference(""), cap))
            }
        } catch let e as BlobStoreError where e.code == .limitExceeded {
            throw RegistryError.busy(.tooManyRequests, "\(cap) uploads are open; finish or cancel some, or retry later", retryAfter: 30, reason: "uploads")
        } catch let e as BlobStoreError {
            throw RegistryError.from(e)
        }
        if let digest {
            // Monolithic upload: the whole blob in this request.
            try await receive(request.body, into: session, abortOnError: true)
            let expectedSize = request.headers[.contentLength].flatMap { UInt64($0) }
            let result = try await commit(session, digest: digest, size: expectedSize)
            try await blocking { try store.linkBlob(name, result.digest) }
            return Response(status: .created, headers: [.location: "/v2/\(name)/blobs/\(digest)", .dockerContentDigest: digest.description, .contentLength: "0"])
        }
        try await blocking { try session.checkpoint() }
        return Response(status: .accepted, headers: uploadHeaders(name: name, id: id, offset: 0))
    }

    func patchUpload(_ request: Request, name: String, id: String) async throws -> Response {
        let session = try await resume(id)
        if let range = request.headers[.contentRange] {
            // Chunks must come in order: the first byte must be the next one we expect.
            let start = range.split(separator: "-").first.flatMap { UInt64($0.trimmingCharacters(in: .whitespaces)) }
            guard start == session.size else {
                var headers = uploadHeaders(name: name, id: id, offset: session.size)
                headers[.contentLength] = nil
                throw RegistryError(.rangeInvalid, "chunk starts at \(range), the upload has \(session.size) bytes", headers: headers)
            }
        }
        try checkSize(request, after: session.size)
        try await receive(request.body, into: session, abortOnError: false)
        try await blocking { try session.checkpoint() }
        return Response(status: .accepted, headers: uploadHeaders(name: name, id: id, offset: session.size))
    }

    func finishUpload(_ request: Request, name: String, id: String) async throws -> Response {
        guard let digestText = query(request, "digest") else {
            throw RegistryError(.digestInvalid, "PUT to finish an upload needs ?digest=")
        }
        let digest = try parseDigest(digestText)
        let session = try await resume(id)
        try checkSize(request, after: session.size)
        try await receive(request.body, into: session, abortOnError: false)
        let result = try await commit(session, digest: digest, size: nil)
        let store = self.store
        try await blocking { try store.linkBlob(name, result.digest) }
        return Response(status: .created, headers: [.location: "/v2/\(name)/blobs/\(digest)", .dockerContentDigest: digest.description, .contentLength: "0"])
    }

    func uploadStatus(name: String, id: String) async throws -> Response {
        let store = self.store
        let offset = try await blocking(notFound: .blobUploadUnknown) { try store.ingestOffset(reference: Registry.reference(id)) }
        var headers = uploadHeaders(name: name, id: id, offset: offset)
        headers[.contentLength] = "0"
        return Response(status: .noContent, headers: headers)
    }

    func cancelUpload(name: String, id: String) async throws -> Response {
        let store = self.store
        try await blocking(notFound: .blobUploadUnknown) { try store.abortIngest(reference: Registry.reference(id)) }
        return Response(status: .noContent, headers: [.contentLength: "0"])
    }

    private func resume(_ id: String) async throws -> IngestSession {
        let store = self.store
        return try await blocking(notFound: .blobUploadUnknown) { try store.resumeIngest(reference: Registry.reference(id)) }
    }

    /// Refuses a body whose declared length would take the blob past `maxBlobBytes`, before
    /// reading any of it. (A body without a length is stopped at the limit as it streams.)
    private func checkSize(_ request: Request, after received: UInt64) throws {
        let limit = configuration.maxBlobBytes
        guard limit > 0, let length = request.headers[.contentLength].flatMap({ UInt64($0) }) else { return }
        if received + length > limit {
            throw RegistryError(.sizeInvalid, "blob would be \(received + length) bytes, the limit is \(limit)", status: .contentTooLarge)
        }
    }

    /// Feeds a request body to an ingest in pieces of about 1 MiB (one hop to the blocking
    /// pool per piece, not per network read); the network keeps reading the next piece
    /// while the previous one is appended. A piece is the network's own buffers, not a copy
    /// of them: the session copies each once, into its segment.
    private func receive(_ body: RequestBody, into session: IngestSession, abortOnError: Bool) async throws {
        let limit = configuration.maxBlobBytes
        let pieceSize = 1 << 20
        var pending: [ByteBuffer] = []
        var pendingBytes = 0
        var appending: Task<Void, Error>?
        func hand(_ piece: [ByteBuffer], bytes: Int) async throws {
            try await appending?.value
            if limit > 0 && session.size + UInt64(bytes) > limit {
                throw RegistryError(.sizeInvalid, "blob exceeds the limit of \(limit) bytes", status: .contentTooLarge)
            }
            appending = Task {
                try await Blocking.run {
                    for buffer in piece { try buffer.withUnsafeReadableBytes { try session.append($0) } }
                }
            }
        }
        do {
            for try await buffer in body {
                bytesIn.increment(by: Int64(buffer.readableBytes))
                pending.append(buffer)
                pendingBytes += buffer.readableBytes
                if pendingBytes >= pieceSize {
                    try await hand(pending, bytes: pendingBytes)
                    pending = []
                    pendingBytes = 0
                }
            }
            if pendingBytes > 0 { try await hand(pending, bytes: pendingBytes) }
            try await appending?.value
        } catch {
            _ = try? await appending?.value // never abort under an append still running
            if abortOnError { try? await Blocking.run { try session.abort() } }
            throw error
        }
    }

    private func commit(_ session: IngestSession, digest: Digest, size: UInt64?) async throws -> IngestResult {
        do {
            return try await Blocking.run {
                try session.commit(expected: digest, expectedSize: size, pin: false, holdFor: self.configuration.uploadLeaseSeconds)
            }
        } catch let e as BlobStoreError where e.code == .digestMismatch {
            throw RegistryError(.digestInvalid, e.message)
        } catch let e as BlobStoreError {
            throw RegistryError.from(e)
        }
    }
}

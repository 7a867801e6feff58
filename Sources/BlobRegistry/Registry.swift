import BlobStore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics

/// The OCI distribution API over a Store. Each concern (blobs, uploads, manifests, tags
/// and referrers) lives in its own extension; `handle` routes a request to it.
public struct Registry: Sendable {
    public let store: Store
    let configuration: RegistryConfiguration
    let bytesIn = Counter(label: "blobstore_registry_bytes_received_total")
    let bytesOut = Counter(label: "blobstore_registry_bytes_sent_total")
    /// Requests streaming a body into the store: each holds up to ~50 MiB.
    let writes: AdmissionGate

    public init(store: Store, configuration: RegistryConfiguration) {
        self.store = store
        self.configuration = configuration
        writes = AdmissionGate(limit: configuration.maxConcurrentWrites)
    }

    func handle(_ request: Request, context: some RequestContext) async throws -> Response {
        guard let path = RepositoryPath(request.uri.path) else {
            throw RegistryError(.nameUnknown, "no such endpoint: \(request.uri.path)")
        }
        if let name = path.name, !ImageReference.isValidName(name) {
            throw RegistryError(.nameInvalid, "invalid repository name \"\(name)\"")
        }
        let method = request.method
        if configuration.readOnly == true && ![.get, .head].contains(method) {
            throw RegistryError(.unsupported, "the registry is read-only", status: .methodNotAllowed)
        }
        switch (path, method) {
        case (.base, .get), (.base, .head):
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: "{}")))
        case (.blob(let name, let digest), .get), (.blob(let name, let digest), .head):
            return try await getBlob(request, name: name, digest: digest, head: method == .head)
        case (.blob(let name, let digest), .delete):
            return try await deleteBlob(name: name, digest: digest)
        case (.uploads(let name), .post):
            if query(request, "digest") != nil, query(request, "mount") == nil {
                return try await writing { try await startUpload(request, name: name) }
            }
            return try await startUpload(request, name: name)
        case (.upload(let name, let id), .patch):
            return try await writing { try await patchUpload(request, name: name, id: id) }
        case (.upload(let name, let id), .put):
            return try await writing { try await finishUpload(request, name: name, id: id) }
        case (.upload(let name, let id), .get):
            return try await uploadStatus(name: name, id: id)
        case (.upload(let name, let id), .delete):
            return try await cancelUpload(name: name, id: id)
        case (.manifest(let name, let reference), .get), (.manifest(let name, let reference), .head):
            return try await getManifest(request, name: name, reference: reference, head: method == .head)
        case (.manifest(let name, let reference), .put):
            return try await putManifest(request, name: name, reference: reference)
        case (.manifest(let name, let reference), .delete):
            return try await deleteManifest(name: name, reference: reference)
        case (.tags(let name), .get):
            return try await listTags(request, name: name)
        case (.referrers(let name, let digest), .get):
            return try await listReferrers(request, name: name, digest: digest)
        default:
            throw RegistryError(.unsupported, "\(method) is not supported on \(request.uri.path)", status: .methodNotAllowed)
        }
    }

    func parseDigest(_ text: some StringProtocol) throws -> Digest {
        guard text.hasPrefix("sha256:"), let d = Digest(parsing: text) else {
            throw RegistryError(.digestInvalid, "invalid digest \"\(text)\" (only sha256 is supported)")
        }
        return d
    }

    func query(_ request: Request, _ key: String) -> String? {
        request.uri.queryParameters[Substring(key)].map { String($0).removingPercentEncoding ?? String($0) }
    }

    /// Runs a request that streams a body into the store once one of the limited places
    /// for that is free, waiting `writeWaitSeconds` at most; then 503 with Retry-After.
    func writing(_ work: () async throws -> Response) async throws -> Response {
        guard await writes.enter(waitingUpTo: configuration.writeWaitSeconds) else {
            throw RegistryError.busy(.unavailable, "\(writes.limit) uploads are already in progress; retry shortly", retryAfter: 5, reason: "writes")
        }
        defer { writes.leave() }
        return try await work()
    }

    /// Runs store work off the async pool, mapping store errors to registry errors.
    func blocking<T: Sendable>(notFound: RegistryError.Code = .blobUnknown, _ work: @escaping @Sendable () throws -> T) async throws -> T {
        do {
            return try await Blocking.run(work)
        } catch let e as BlobStoreError {
            throw RegistryError.from(e, notFound: notFound)
        }
    }
}

import BlobStore
import Foundation
import HTTPTypes
import Hummingbird

extension Registry {
    /// GET/HEAD a manifest by tag or digest: the exact bytes pushed, with the media type
    /// they were pushed as.
    func getManifest(_ request: Request, name: String, reference: String, head: Bool) async throws -> Response {
        try validate(reference: reference)
        let store = self.store
        guard let found = try await blocking({ try store.repositoryManifest(name, reference: reference) }) else {
            throw RegistryError(.manifestUnknown, "manifest \(reference) is not in repository \(name)")
        }
        var headers: HTTPFields = [
            .contentType: found.mediaType ?? MediaType.ociManifest,
            .dockerContentDigest: found.digest.description,
            .eTag: "\"\(found.digest)\"",
            .contentLength: String(found.size),
        ]
        // Manifests are small by definition: one over the limit (an imported image's, say)
        // is not read into memory.
        guard found.size <= UInt64(configuration.maxManifestBytes) else {
            throw RegistryError(.manifestUnknown, "manifest \(found.digest) is \(found.size) bytes, over the limit of \(configuration.maxManifestBytes)")
        }
        if head { return Response(status: .ok, headers: headers, body: .init()) }
        let bytes = try await blocking(notFound: .manifestUnknown) { try store.readAll(found.digest) }
        headers[.contentLength] = nil
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    func putManifest(_ request: Request, name: String, reference: String) async throws -> Response {
        try validate(reference: reference)
        let limit = configuration.maxManifestBytes
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit {
            throw RegistryError(.manifestInvalid, "manifest is \(length) bytes, the limit is \(limit)", status: .contentTooLarge)
        }
        var body = ByteBuffer()
        for try await piece in request.body {
            body.writeImmutableBuffer(piece)
            if body.readableBytes > limit {
                throw RegistryError(.manifestInvalid, "manifest exceeds the limit of \(limit) bytes", status: .contentTooLarge)
            }
        }
        let bytes = Array(body.readableBytesView)
        let digest = SHA256Hasher.hash(bytes)
        if reference.hasPrefix("sha256:") {
            guard try parseDigest(reference) == digest else {
                throw RegistryError(.digestInvalid, "manifest hashes to \(digest), not \(reference)")
            }
        }
        let tag: String? = reference.hasPrefix("sha256:") ? nil : reference
        let mediaType = request.headers[.contentType].map { $0.split(separator: ";")[0].trimmingCharacters(in: .whitespaces) }
        let store = self.store
        let manifest: Manifest
        do {
            (_, manifest) = try await Blocking.run { try store.putManifest(name, tag: tag, bytes: bytes, mediaType: mediaType) }
        } catch let e as BlobStoreError {
            switch e.code {
            case .notFound: throw RegistryError(.manifestBlobUnknown, e.message)
            case .invalidArgument, .unsupportedFormat: throw RegistryError(.manifestInvalid, e.message)
            default: throw RegistryError.from(e)
            }
        }
        var headers: HTTPFields = [.location: "/v2/\(name)/manifests/\(digest)", .dockerContentDigest: digest.description, .contentLength: "0"]
        if let subject = manifest.subject { headers[.ociSubject] = subject.digest.description }
        return Response(status: .created, headers: headers)
    }

    func deleteManifest(name: String, reference: String) async throws -> Response {
        try validate(reference: reference)
        let store = self.store
        let deleted: Bool
        if reference.hasPrefix("sha256:") {
            let digest = try parseDigest(reference)
            deleted = try await blocking { try store.deleteManifest(name, digest) }
        } else {
            deleted = try await blocking { try store.deleteTag(name, reference) }
        }
        guard deleted else { throw RegistryError(.manifestUnknown, "manifest \(reference) is not in repository \(name)") }
        return Response(status: .accepted, headers: [.contentLength: "0"])
    }

    func validate(reference: String) throws {
        if reference.hasPrefix("sha256:") || reference.contains(":") {
            _ = try parseDigest(reference)
        } else if !ImageReference.isValidTag(reference) {
            throw RegistryError(.manifestInvalid, "invalid tag \"\(reference)\"", status: .badRequest)
        }
    }

    /// Tags in lexical order, `n` at a time after `last`, with a `Link` to the next page.
    func listTags(_ request: Request, name: String) async throws -> Response {
        let store = self.store
        let all = try await blocking { try store.tags(name) }
        if all.isEmpty, !(try await blocking { try store.repositoryExists(name) }) {
            throw RegistryError(.nameUnknown, "repository \(name) is not known")
        }
        var tags = all
        if let last = query(request, "last") { tags = tags.filter { $0 > last } }
        var headers: HTTPFields = [.contentType: "application/json"]
        if let nText = query(request, "n") {
            guard let n = Int(nText), n >= 0 else { throw RegistryError(.unsupported, "n must be a number", status: .badRequest) }
            if tags.count > n {
                tags = Array(tags.prefix(n))
                if let lastTag = tags.last { headers[.link] = "</v2/\(name)/tags/list?n=\(n)&last=\(lastTag)>; rel=\"next\"" }
            }
        }
        let body = try JSONSerialization.data(withJSONObject: ["name": name, "tags": tags] as [String: Any], options: [.sortedKeys, .withoutEscapingSlashes])
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    /// The referrers API: an image index of the manifests whose subject is `digest`.
    func listReferrers(_ request: Request, name: String, digest text: String) async throws -> Response {
        let digest = try parseDigest(text)
        let store = self.store
        var descriptors = try await blocking { try store.referrers(name, subject: digest) }
        var headers: HTTPFields = [.contentType: MediaType.ociIndex]
        if let type = query(request, "artifactType") {
            descriptors = descriptors.filter { $0.artifactType == type }
            headers[.ociFiltersApplied] = "artifactType"
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        struct Index: Encodable { var schemaVersion = 2; var mediaType = MediaType.ociIndex; var manifests: [Descriptor] }
        let body = try encoder.encode(Index(manifests: descriptors))
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}

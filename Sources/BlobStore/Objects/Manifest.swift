import Foundation

/// An OCI content descriptor: what a manifest says about a blob it points at.
public struct Descriptor: Sendable, Equatable, Codable {
    public var mediaType: String
    public var digest: Digest
    public var size: UInt64
    public var annotations: [String: String]?
    public var artifactType: String?
    public var platform: Platform?

    public struct Platform: Sendable, Equatable, Codable {
        public var architecture: String
        public var os: String
        public var variant: String?
    }

    public init(mediaType: String, digest: Digest, size: UInt64, annotations: [String: String]? = nil) {
        self.mediaType = mediaType
        self.digest = digest
        self.size = size
        self.annotations = annotations
    }
}

/// The media types of manifests and indexes the store understands.
public enum MediaType {
    public static let ociManifest = "application/vnd.oci.image.manifest.v1+json"
    public static let ociIndex = "application/vnd.oci.image.index.v1+json"
    public static let ociConfig = "application/vnd.oci.image.config.v1+json"
    public static let ociLayer = "application/vnd.oci.image.layer.v1.tar"
    public static let ociLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip"
    public static let ociLayerZstd = "application/vnd.oci.image.layer.v1.tar+zstd"
    public static let dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
    public static let dockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
    public static let dockerConfig = "application/vnd.docker.container.image.v1+json"
    public static let dockerLayer = "application/vnd.docker.image.rootfs.diff.tar"
    public static let dockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip"

    public static func isIndex(_ type: String) -> Bool { type == ociIndex || type == dockerManifestList }
    public static func isManifest(_ type: String) -> Bool { type == ociManifest || type == dockerManifest }
}

/// A parsed image manifest or index: just the structure that creates references.
public struct Manifest: Sendable, Equatable {
    public var mediaType: String
    public var config: Descriptor?
    public var layers: [Descriptor]
    /// An index's entries.
    public var manifests: [Descriptor]
    public var subject: Descriptor?
    public var artifactType: String?
    public var annotations: [String: String]?

    public var isIndex: Bool { MediaType.isIndex(mediaType) }

    /// Every blob this manifest holds a reference on (config, layers, child manifests).
    /// The subject is not among them: a referrer may arrive before what it refers to.
    public var children: [Descriptor] {
        (config.map { [$0] } ?? []) + layers + manifests
    }

    /// Parses and checks a manifest or index; `declaredType` is what the descriptor or the
    /// HTTP Content-Type said, used when the JSON has no `mediaType` field.
    public init(parsing bytes: [UInt8], declaredType: String? = nil) throws {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(bytes))
        } catch {
            throw BlobStoreError(.invalidArgument, "manifest is not valid JSON: \(error.localizedDescription)")
        }
        guard let json = object as? [String: Any] else {
            throw BlobStoreError(.invalidArgument, "manifest is not a JSON object")
        }
        if let version = json["schemaVersion"], (version as? Int) != 2 {
            throw BlobStoreError(.invalidArgument, "manifest schemaVersion must be 2")
        }
        let type = (json["mediaType"] as? String) ?? declaredType ?? (json["manifests"] != nil ? MediaType.ociIndex : MediaType.ociManifest)
        if let declaredType, let inner = json["mediaType"] as? String, inner != declaredType,
           MediaType.isIndex(declaredType) || MediaType.isManifest(declaredType) {
            throw BlobStoreError(.invalidArgument, "manifest mediaType \(inner) does not match \(declaredType)")
        }
        mediaType = type
        artifactType = json["artifactType"] as? String
        annotations = json["annotations"] as? [String: String]
        subject = try (json["subject"] as? [String: Any]).map { try Manifest.descriptor($0, "subject") }
        if MediaType.isIndex(type) {
            guard let list = json["manifests"] as? [[String: Any]] else {
                throw BlobStoreError(.invalidArgument, "index has no manifests list")
            }
            manifests = try list.enumerated().map { try Manifest.descriptor($1, "manifests[\($0)]") }
            layers = []
            config = nil
        } else if MediaType.isManifest(type) {
            guard let c = json["config"] as? [String: Any] else {
                throw BlobStoreError(.invalidArgument, "manifest has no config descriptor")
            }
            config = try Manifest.descriptor(c, "config")
            guard let list = json["layers"] as? [[String: Any]] else {
                throw BlobStoreError(.invalidArgument, "manifest has no layers list")
            }
            layers = try list.enumerated().map { try Manifest.descriptor($1, "layers[\($0)]") }
            manifests = []
        } else {
            throw BlobStoreError(.invalidArgument, "unsupported manifest media type \(type)")
        }
    }

    static func descriptor(_ json: [String: Any], _ field: String) throws -> Descriptor {
        guard let type = json["mediaType"] as? String, !type.isEmpty else {
            throw BlobStoreError(.invalidArgument, "descriptor \(field) has no mediaType")
        }
        guard let text = json["digest"] as? String, let digest = Digest(parsing: text), text.hasPrefix("sha256:") else {
            throw BlobStoreError(.invalidArgument, "descriptor \(field) has no valid sha256 digest")
        }
        guard let size = (json["size"] as? NSNumber)?.int64Value, size >= 0 else {
            throw BlobStoreError(.invalidArgument, "descriptor \(field) has no valid size")
        }
        var d = Descriptor(mediaType: type, digest: digest, size: UInt64(size), annotations: json["annotations"] as? [String: String])
        d.artifactType = json["artifactType"] as? String
        if let p = json["platform"] as? [String: Any], let arch = p["architecture"] as? String, let os = p["os"] as? String {
            d.platform = .init(architecture: arch, os: os, variant: p["variant"] as? String)
        }
        return d
    }
}
